"""camt.053 decode throughput: entries decoded per second (target >= 20k/s).

Run: `python -m arrecon.loadtest.bench_bank [--entries N] [--repeat R]`. The
statement is synthetic (seeded, balanced) so the figure does not depend on
sample files; each entry carries one TxDtls with parties and remittance.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

from arrecon.connectors.bank import camt
from arrecon.connectors.envelope import RawEnvelope
from arrecon.state.money import format_minor

_ENTRY = """<Ntry><Amt Ccy="EUR">{amount}</Amt><CdtDbtInd>{direction}</CdtDbtInd>
<Sts><Cd>BOOK</Cd></Sts><BookgDt><Dt>2026-03-01</Dt></BookgDt><ValDt><Dt>2026-03-01</Dt></ValDt>
<AcctSvcrRef>SVC{n}</AcctSvcrRef><BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>RCDT</Cd>
<SubFmlyCd>ESCT</SubFmlyCd></Fmly></Domn></BkTxCd><NtryDtls><TxDtls>
<Refs><EndToEndId>E2E{n}</EndToEndId></Refs><RltdPties><Dbtr><Pty><Nm>Customer {n}</Nm></Pty>
</Dbtr><DbtrAcct><Id><IBAN>DE89370400440532013000</IBAN></Id></DbtrAcct></RltdPties>
<RmtInf><Ustrd>Invoice INV-{n}</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>"""


def _major(minor: int) -> str:
    return format_minor(minor, "EUR")


def statement(entries: int) -> str:
    """A balanced camt.053 with `entries` entries (every fifth one a debit)."""
    parts, net_minor = [], 0
    for n in range(entries):
        minor = 1000 + (n * 7919) % 500_000
        debit = n % 5 == 4
        net_minor += -minor if debit else minor
        parts.append(
            _ENTRY.format(amount=_major(minor), direction="DBIT" if debit else "CRDT", n=n)
        )
    opening = 10_000_000
    closing = opening + net_minor
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt>
<GrpHdr><MsgId>BENCH</MsgId></GrpHdr><Stmt><Id>BENCH-1</Id>
<Acct><Id><IBAN>DE02120300000000202051</IBAN></Id><Ccy>EUR</Ccy></Acct>
<Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">{_major(opening)}</Amt>
<CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-03-01</Dt></Dt></Bal>
<Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">{_major(closing)}</Amt>
<CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-03-01</Dt></Dt></Bal>
{"".join(parts)}</Stmt></BkToCstmrStmt></Document>"""


def run(entries: int, repeat: int) -> float:
    """Best entries per CPU second over `repeat` decodes of one statement.

    CPU time rather than wall time, so other processes on a shared machine do
    not distort the figure.
    """
    body = statement(entries).encode()
    envelope = RawEnvelope("bank", "camt053", datetime(2026, 3, 2, tzinfo=UTC), body)
    best_s = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        decoded = camt.decode(envelope)
        best_s = min(best_s, time.process_time() - started)
        if decoded.rejections or len(decoded.events) + len(decoded.ignored) != entries:
            raise SystemExit(f"decode failed: {decoded.rejections[:1]}")
    return entries / best_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rate = run(args.entries, args.repeat)
    print(f"camt.053: {args.entries} entries, {rate:,.0f} entries per CPU second (target 20,000/s)")


if __name__ == "__main__":
    main()
