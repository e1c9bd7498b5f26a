"""The weekly uplift model: who a message helps, learned from the randomised history (contacted arms against the
holdout), stored with its version, window and Qini curve."""

from __future__ import annotations

from prefect import flow

from campaigns.bootstrap import ready_services
from flows.credentials import load_credentials
from flows.parameters import TrainingDays
from tasks.uplift_tasks import train_and_publish_uplift


@flow(name="train_uplift_model",
      description="Train the next uplift model version (a T-learner: contacted arms against the holdout) and its "
                  "out-of-time Qini curve; with too little history it says so and targeted arms contact everyone.")
def train_uplift_model(days: TrainingDays = 180) -> dict:
    ready_services(load_credentials())
    return train_and_publish_uplift(days)
