"""The benchmark's parts, one module each: FIGURES (targets), run(args) and describe(name, detail)."""
