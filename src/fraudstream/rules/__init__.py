"""The fraud team's own rules beside the model: an expression language, vectorised evaluation,
the decision order, and backtests. Pure computation, no I/O (see docs/rules.md).

>>> schema = Schema.for_mode("pre_auth")
>>> rules = RuleSet(
...     [Rule("big_transfer", 'type == "TRANSFER" and amount > 10_000', "review", status="live")],
...     schema,
... )
>>> frame = {"type": ["TRANSFER", "PAYMENT"], "amount": [20_000.0, 50_000.0]}
>>> decided = rules.decide(frame, model_decision=[0, 0])
>>> decided.decision.tolist(), decided.fired
([1, 0], [('big_transfer',), ()])
"""

from __future__ import annotations

from fraudstream.rules._ast import Expr, Type, unparse
from fraudstream.rules._backtest import Backtest, backtest
from fraudstream.rules._compile import Columns, Compiled, Lists
from fraudstream.rules._errors import RuleError
from fraudstream.rules._fields import MODES, Field, Schema
from fraudstream.rules._frame import batch_frame
from fraudstream.rules._parse import KEYWORDS, parse
from fraudstream.rules._rules import (
    ACTIONS,
    STATUSES,
    Action,
    Decided,
    Rule,
    RuleSet,
    Status,
    combine,
    validate,
)

__all__ = [
    "ACTIONS",
    "KEYWORDS",
    "MODES",
    "STATUSES",
    "Action",
    "Backtest",
    "Columns",
    "Compiled",
    "Decided",
    "Expr",
    "Field",
    "Lists",
    "Rule",
    "RuleError",
    "RuleSet",
    "Schema",
    "Status",
    "Type",
    "backtest",
    "batch_frame",
    "combine",
    "parse",
    "unparse",
    "validate",
]
