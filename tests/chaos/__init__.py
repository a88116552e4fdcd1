"""Fault injection on the local emulators (`make chaos`): not part of `make test`."""
