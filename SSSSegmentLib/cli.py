"""`sssseg` command line (thin argparse layer over the API)."""

def main(argv: list[str] | None = None) -> int:
    raise SystemExit("not yet")
