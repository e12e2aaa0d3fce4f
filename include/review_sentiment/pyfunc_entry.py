"""MLflow "models from code" entry: logged with the model, so nothing is pickled."""

import mlflow

from review_sentiment.pyfunc_model import SentimentModel

mlflow.models.set_model(SentimentModel())
