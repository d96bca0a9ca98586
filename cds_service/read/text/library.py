"""medspaCy, imported once for the reader with the process left as it was.

Role in the data flow: imported first by the free-text reader's modules (context.py, nlp.py) that
use medspaCy's classes. medspaCy's import turns every warning of the process off
(`warnings.filterwarnings("ignore")`): the import runs inside `warnings.catch_warnings()`, so the
process's filters are kept. Its loguru logging is turned off (PyRuSH would log every sentence). And
medspacy.util imports QuickUMLS (UMLS concept mapping, which the reader does not use) only to
register its spaCy factory, and QuickUMLS imports NLTK: 19 MB of every worker and 0.15 s of its
start. A stand-in module is given for that one import and taken away after it, so a later
`import quickumls` anywhere in the process gets the real one.
"""

from __future__ import annotations

import sys
import types
import warnings


def _silence_library_logging() -> None:
    try:
        from loguru import logger
    except ImportError:  # pragma: no cover - loguru comes with PyRuSH
        return
    for name in ("PyRuSH", "medspacy", "quickumls", "PyFastNER"):
        logger.disable(name)


def _import_medspacy():
    stand_ins = {name: types.ModuleType(name) for name in ("quickumls", "quickumls.spacy_component")}
    stand_ins["quickumls"].spacy_component = stand_ins["quickumls.spacy_component"]
    placed = [name for name in stand_ins if name not in sys.modules and "medspacy" not in sys.modules]
    sys.modules.update({name: stand_ins[name] for name in placed})
    try:
        with warnings.catch_warnings():
            import medspacy
    finally:
        for name in placed:
            if sys.modules.get(name) is stand_ins[name]:
                del sys.modules[name]
    _silence_library_logging()
    return medspacy


medspacy = _import_medspacy()
