"""Loading recipe hyper-parameters with errors that tell the user what to fix.

Command-line overrides are checked before anything is built or written (``check_overrides``):

- an override repeated on one command line (``--lr=1e-4 ... --lr=5e-5``, e.g. a preset plus the
  user's own value) is resolved, the last one wins (logged), instead of YAML's duplicate-key
  error;
- every override is type-checked against the YAML's value (``--lr=abc`` where the file has a
  number is a ``ValueError`` naming the key, the value and the expected type); ``null`` is
  accepted everywhere, references follow the key they name, ``!PLACEHOLDER`` and object
  keys (``!new:`` ...) accept anything;
- ``hyperpyyaml`` refuses an override whose key is not in the YAML file; this module turns that
  into a message naming the misspelled ``--key`` and the closest existing keys.

``parse_arguments`` is ``speechbrain.parse_arguments`` followed by these checks, so that the
overrides saved in the experiment folder are the checked ones.

Authors
-------
speechmapper developers, 2026
"""

import dataclasses
import difflib
import logging
import re
from collections.abc import Mapping

import torch
from hyperpyyaml import load_hyperpyyaml

from speechmapper_plugin.utils.textfiles import read_text

logger = logging.getLogger(__name__)


def load_hparams(hparams_file, overrides=None):
    """Load a recipe YAML with command-line overrides.

    Arguments
    ---------
    hparams_file : str
        The YAML file.
    overrides : str or dict, optional
        Overrides as returned by ``speechbrain.parse_arguments``.

    Returns
    -------
    dict
        The loaded hyper-parameters.

    Example
    -------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "h.yaml")
    >>> _ = open(path, "w").write("lr: 0.1\\nbatch_size: 4\\n")
    >>> load_hparams(path, "lr: 0.5")["lr"]
    0.5
    >>> load_hparams(path, "batch_sise: 8")
    Traceback (most recent call last):
    ...
    KeyError: 'Unknown hyper-parameter --batch_sise (command-line override) for ... Did you mean --batch_size?'
    >>> load_hparams(path, "lr: abc")
    Traceback (most recent call last):
    ...
    ValueError: --lr=abc: expected a number (float), as 0.1 in ..., got the string 'abc'.
    """
    text = read_text(hparams_file)  # a byte that is not UTF-8: its line is named
    overrides = check_overrides(hparams_file, overrides, text=text)
    try:
        return load_hyperpyyaml(text, overrides or {})
    except KeyError as err:
        match = re.search(r"Override '([^']+)' not found in: (\[.*\])", str(err))
        if not match:
            raise
        key = match.group(1)
        known = re.findall(r"'([^']+)'", match.group(2))
        close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
        hint = (
            f" Did you mean {' or '.join('--' + c for c in close)}?"
            if close
            else f" Keys of this file: {', '.join(sorted(known))}."
        )
        raise KeyError(
            f"Unknown hyper-parameter --{key} (command-line override) for {hparams_file}.{hint}"
        ) from None


def resolve_device(run_opts):
    """The device a script should use: ``--device`` if given, else CUDA when available."""
    device = run_opts.get("device") if hasattr(run_opts, "get") else None
    return device or ("cuda:0" if torch.cuda.is_available() else "cpu")


def parse_arguments(argv):
    """``speechbrain.parse_arguments`` with the overrides checked (``check_overrides``):
    ``(hparams_file, run_opts, overrides)``, the overrides free of repeated keys.

    Example
    -------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "h.yaml")
    >>> _ = open(path, "w").write("lr: 0.1\\nsplits: [a]\\n")
    >>> parse_arguments([path, "--lr=0.2", "--lr=0.3"])[2]
    'lr: 0.3'
    >>> parse_arguments([path, "--splits=dev"])
    Traceback (most recent call last):
    ...
    ValueError: --splits=dev: expected a list (YAML [a, b]), as ['a'] in ..., got the string 'dev'.
    """
    import speechbrain as sb

    # SpeechBrain joins the arguments with "=" and splits them again, so an "=" inside a value
    # (``--system_name="CE sigma=0.9"``) would become a space: hide it from that round trip.
    argv = list(argv)
    argv[1:] = [_hide_equals(arg) for arg in argv[1:]]
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    if isinstance(overrides, str):
        overrides = overrides.replace(_EQUALS, "=")
    hidden = {
        key: value.replace(_EQUALS, "=")
        for key, value in run_opts.items()
        if isinstance(value, str) and _EQUALS in value
    }
    if hidden:  # SpeechBrain's RunOptions is a frozen dataclass
        run_opts = dataclasses.replace(run_opts, **hidden)
    return hparams_file, run_opts, check_overrides(hparams_file, overrides)


#: Stands for an "=" inside a command-line value while SpeechBrain parses the arguments.
_EQUALS = "\x00EQ\x00"


def _hide_equals(arg):
    """``--key=a=b`` -> ``--key=a<_EQUALS>b``; a bare value's every "=" is hidden.

    Example
    -------
    >>> _hide_equals("--name=a=b").replace(_EQUALS, "#"), _hide_equals("--lr=0.1")
    ('--name=a#b', '--lr=0.1')
    """
    if arg.startswith("--") and "=" in arg:
        key, value = arg.split("=", 1)
        return f"{key}={value.replace('=', _EQUALS)}"
    return arg.replace("=", _EQUALS)


def check_overrides(hparams_file, overrides, text=None):
    """Resolve repeated overrides (the last wins) and type-check each against the YAML file.

    Arguments
    ---------
    hparams_file : str
        The YAML file (named in the messages).
    overrides : str or dict or None
        Overrides as returned by ``speechbrain.parse_arguments`` (YAML text) or a dict.
    text : str, optional
        The content of ``hparams_file`` when already read.

    Returns
    -------
    str or dict or None
        The overrides, with one entry per key (YAML text keeps its form).

    Raises
    ------
    ValueError
        An override whose value does not have the type of the YAML's value (the message names
        the key, the value and the expected type), or overrides that are not YAML.

    Example
    -------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "h.yaml")
    >>> _ = open(path, "w").write("lr: 0.1\\nsteps: 10\\nout: !ref r/<steps>\\n")
    >>> check_overrides(path, "lr: 1\\nsteps: 20\\nsteps: 30\\nout: x")
    'lr: 1\\nsteps: 30\\nout: x'
    >>> check_overrides(path, {"steps": 2.5})
    Traceback (most recent call last):
    ...
    ValueError: --steps=2.5: expected an integer, as 10 in ..., got the number 2.5.
    """
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    if not overrides:
        return overrides
    if isinstance(overrides, str):
        overrides, values = _last_wins(overrides)
    elif isinstance(overrides, Mapping):
        values = dict(overrides)
    else:
        raise TypeError(f"Overrides must be YAML text or a dict, got {type(overrides).__name__}.")
    if text is None:
        text = read_text(hparams_file)
    try:
        tree = YAML().load(text)
    except YAMLError:  # not ours to report: hyperpyyaml names the problem when it loads
        return overrides
    if isinstance(tree, Mapping):
        for key, value in values.items():
            if key in tree:
                _check_value(f"--{key}", value, tree[key], tree, hparams_file)
    return overrides


def _last_wins(text):
    """The override text with each top-level key once (its last value), and the values."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError
    from ruamel.yaml.nodes import MappingNode

    yaml = YAML()
    try:
        node = yaml.compose(text)
    except YAMLError as err:
        raise ValueError(f"The command-line overrides are not valid YAML: {err}") from None
    if not isinstance(node, MappingNode):
        raise ValueError(f"The command-line overrides are not --key=value pairs: {text!r}.")
    entries = {}
    for key_node, value_node in node.value:
        key = key_node.value
        entry = text[key_node.start_mark.index : value_node.end_mark.index].rstrip()
        if key in entries:
            logger.warning(
                "--%s is given twice (%s, then %s): the last one is used.",
                key,
                entries[key].split(":", 1)[1].strip(),
                entry.split(":", 1)[1].strip(),
            )
            del entries[key]  # keep the order of the last occurrence
        entries[key] = entry
    resolved = "\n".join(entries.values())
    values = yaml.load(resolved) or {}
    return (resolved if len(entries) < len(node.value) else text), dict(values)


_TYPE_NAMES = {
    bool: "true or false",
    int: "an integer",
    float: "a number (float)",
    str: "a string",
    list: "a list (YAML [a, b])",
    dict: "a mapping (YAML {key: value})",
}


def _referenced(value, tree, seen=()):
    """The value a YAML node stands for: a ``!ref <key>`` followed to the key's value."""
    tag = getattr(getattr(value, "tag", None), "value", None)
    if str(tag) == "!ref":
        match = re.fullmatch(r"\s*<([^<>\[\]]+)>\s*", str(getattr(value, "value", "")))
        if match and match.group(1) in tree and match.group(1) not in seen:
            key = match.group(1)
            return _referenced(tree[key], tree, (*seen, key))
    return value


def _expected(value, tree):
    """The type an override of ``value`` (a node of the YAML tree) must have, or None (any)."""
    value = _referenced(value, tree)
    tag = getattr(getattr(value, "tag", None), "value", None)
    if tag is not None and str(tag).startswith("!"):
        return None  # !PLACEHOLDER, objects, expressions: anything goes
    if value is None:
        return None
    for kind in (bool, int, float, str):
        if isinstance(value, kind):
            return kind
    if isinstance(value, Mapping):
        return dict
    if isinstance(value, (list, tuple)):
        return list
    return None


def _describe(value):
    if isinstance(value, bool):
        return f"the boolean {value}"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, Mapping):
        return f"the mapping {dict(value)}"
    if isinstance(value, (list, tuple)):
        return f"the list {list(value)}"
    return repr(value)


def _plain(value):
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    for kind in (bool, int, float, str):
        if isinstance(value, kind):
            return kind(value)
    return value


def _check_value(name, value, yaml_value, tree, hparams_file):
    expected = _expected(yaml_value, tree)
    if expected is None or value is None:
        return
    ok = {
        bool: lambda v: isinstance(v, bool),
        int: lambda v: isinstance(v, int) and not isinstance(v, bool),
        float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        str: lambda v: isinstance(v, (str, int, float)),  # a number is fine as a name
        list: lambda v: isinstance(v, (list, tuple)),
        dict: lambda v: isinstance(v, Mapping),
    }[expected](value)
    if not ok:
        shown = value if isinstance(value, str) else _plain(value)
        raise ValueError(
            f"{name}={shown}: expected {_TYPE_NAMES[expected]}, as "
            f"{_plain(_referenced(yaml_value, tree))!r} in "
            f"{hparams_file}, got {_describe(_plain(value))}."
        )
    if expected is dict:  # hyperpyyaml merges nested keys: check them too
        for key, item in value.items():
            if key in yaml_value:
                _check_value(f"{name}.{key}", item, yaml_value[key], tree, hparams_file)
