"""``python -m asocial_operator`` runs the same command as ``asocial-operator``."""

from asocial_operator import cli

if __name__ == "__main__":
    raise SystemExit(cli.main())
