"""What is known of a ticket-finding method before it is imported (torch-free, so a config is
checked before any heavy import): whether it prunes to target compressions, the dataclass its
own settings (``pruning.settings``) are checked against, and a one-line summary.

``pruning.method`` picks a registered method; the built-ins read the shared ``pruning`` keys
(IMP: levels, fraction, scope, scorer, groups; at_init: compressions, scorer, iterations,
scoring_batches; early_bird: compressions and its ``early_bird`` section). A plugin method's own
settings go under ``pruning.settings``, checked strictly against the dataclass it registers (as
PEFT's ``peft_type`` picks a config class), so a typo there is refused before any work.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MethodSpec:
    compressions: bool = False  # prunes to pruning.compressions (one level each), which it then needs
    settings: object = None  # a dataclass, or "module:Dataclass", checking pruning.settings; None: takes none
    summary: str = ""
