"""hpsearch: hyperparameter search as a shared service.

The public face for Python users. `hpsearch.trainer` is the interface a team's own training
code implements to be tuned by hpsearch (see the README, "Write your own trainer").
"""

from hpsearch.agent import agent

__all__ = ["agent"]
