"""The help layout shared by the sub-commands: the description as written, every option's default shown."""

from __future__ import annotations

import argparse


class DefaultsFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keep the description's layout and show every default (a None default or a flag's False says nothing)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        """The option's help with '(default: …)' appended when the default means something."""
        if action.default is None or action.default is False or "%(default)" in (action.help or ""):
            return action.help or ""
        return super()._get_help_string(action)
