"""A step kind as a team would write one: it imports nothing of Aftercare.

``ledger-post`` appends a line to a ledger file (the file stands in for a team's ledger
system) and answers with the entry's number; an entry posted again under the same
idempotency key is not written twice. ``fail_first`` makes the first attempts fail
(retryable), ``refuse`` fails without retry.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class LedgerRefused(Exception):
    """The ledger says no; trying again will not change that."""

    retryable = False


class LedgerPost:
    """Post an amount to a ledger file, once per idempotency key."""

    class Input(BaseModel):
        model_config = ConfigDict(extra="forbid")

        ledger: str = Field(description="the ledger file")
        account: str
        amount: float = Field(gt=0)
        memo: str = ""
        fail_first: int = Field(default=0, ge=0)
        refuse: bool = False

    class Output(BaseModel):
        entry: int
        account: str
        balance: float

    def run(self, inputs: Input, context: Any) -> Output:
        ledger = Path(inputs.ledger)
        lines = [json.loads(line) for line in ledger.read_text(encoding="utf-8").splitlines()] if ledger.exists() else []
        attempts = ledger.with_suffix(".attempts")
        with attempts.open("a", encoding="utf-8") as out:
            out.write(json.dumps({"key": context.idempotency_key, "attempt": context.attempt, "case": context.case_key,
                                  "step": context.step_id, "visit": context.visit}) + "\n")
        if inputs.refuse:
            raise LedgerRefused(f"account {inputs.account} is closed")
        if context.attempt <= inputs.fail_first:
            raise ConnectionError(f"ledger busy (attempt {context.attempt})")
        context.logger.info("posting %s to %s", inputs.amount, inputs.account)
        for number, line in enumerate(lines, start=1):
            if line["key"] == context.idempotency_key:
                return self.Output(entry=number, account=line["account"], balance=_balance(lines, line["account"]))
        lines.append({"key": context.idempotency_key, "account": inputs.account, "amount": inputs.amount, "memo": inputs.memo})
        with ledger.open("a", encoding="utf-8") as out:
            out.write(json.dumps(lines[-1]) + "\n")
        return self.Output(entry=len(lines), account=inputs.account, balance=_balance(lines, inputs.account))


def _balance(lines: list[dict[str, Any]], account: str) -> float:
    return float(sum(line["amount"] for line in lines if line["account"] == account))
