"""The routing taxonomy: the two channels and the departments that handle calls.

The default national taxonomy lives in ``data/defaults/taxonomy.yaml``; a city can use its own file
(:func:`load_taxonomy`) or let one be inferred from its labelled tickets (:meth:`Taxonomy.from_labels`).
Models derive their label order from the taxonomy and save the taxonomy they were trained with.

>>> tax = default_taxonomy()
>>> tax.channel_of("fire")
'110'
>>> tax["convenience"].name
'便民求助'
"""
from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

import yaml

logger = logging.getLogger(__name__)

CHANNELS = ("110", "12345")
DEFAULT_TAXONOMY_PATH = Path(__file__).parent / "defaults" / "taxonomy.yaml"


class TaxonomyError(ValueError):
    """A taxonomy file or label set is not usable; the message says what and where."""


@dataclass(frozen=True)
class Department:
    """One department a call can be routed to.

    Attributes
    ----------
    code : str
        Stable identifier used as the model label (``police_rescue``) or, for a city's own
        taxonomy, the department name as its ticket system writes it (``市公安局``).
    name : str
        Chinese display name shown to call-takers.
    channel : str
        ``"110"`` or ``"12345"``.
    links : tuple of str
        Other emergency lines linked in when this department takes a call (``"119"``).
    covers : tuple of str
        For a city's own taxonomy: codes of the default taxonomy this department handles
        (``公安局交通警察支队`` covers ``police_traffic``), so that the rules' opinions and the danger
        override name the city's department instead of a code the city doesn't have.
    """

    code: str
    name: str
    channel: str
    description: str = ""
    typical: tuple[str, ...] = ()
    links: tuple[str, ...] = ()
    covers: tuple[str, ...] = ()


@dataclass
class Taxonomy:
    """An ordered set of departments, each belonging to one channel."""

    name: str
    departments: list[Department]
    version: int = 1
    channels: dict[str, str] = field(default_factory=lambda: {"110": "110 报警服务台", "12345": "12345 政务服务便民热线"})

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for dep in self.departments:
            if dep.channel not in CHANNELS:
                raise TaxonomyError(f"department {dep.code!r}: channel must be one of {CHANNELS}, got {dep.channel!r}")
            if dep.code in seen:
                raise TaxonomyError(f"department {dep.code!r} is declared twice")
            seen.add(dep.code)
        if not self.departments:
            raise TaxonomyError("a taxonomy needs at least one department")
        self._by_code = {d.code: d for d in self.departments}

    # -- lookups -------------------------------------------------------------------------------
    @property
    def codes(self) -> list[str]:
        """Department codes in taxonomy order."""
        return [d.code for d in self.departments]

    def __contains__(self, code: object) -> bool:
        return code in self._by_code

    def __getitem__(self, code: str) -> Department:
        try:
            return self._by_code[code]
        except KeyError:
            raise TaxonomyError(f"unknown department {code!r}; known: {', '.join(self.codes)}") from None

    def channel_of(self, code: str) -> str:
        """Channel (``"110"``/``"12345"``) of a department code."""
        return self[code].channel

    def codes_for(self, channel: str) -> list[str]:
        """Department codes belonging to ``channel``."""
        return [d.code for d in self.departments if d.channel == channel]

    def translate(self, code: str) -> str | None:
        """``code`` itself when it is one of ours, else the first department that declares it in
        ``covers``, else None (the code means nothing in this taxonomy)."""
        if code in self._by_code:
            return code
        return next((d.code for d in self.departments if code in d.covers), None)

    # -- (de)serialisation ---------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "version": self.version,
            "channels": dict(self.channels),
            "departments": [
                {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(d).items()} for d in self.departments
            ],
        }

    @classmethod
    def from_dict(cls, raw: Mapping, source: str = "<dict>") -> "Taxonomy":
        if not isinstance(raw, Mapping) or "departments" not in raw:
            raise TaxonomyError(f"{source}: a taxonomy needs a 'departments' list")
        deps = []
        for i, d in enumerate(raw["departments"]):
            if not isinstance(d, Mapping) or "code" not in d or "channel" not in d:
                raise TaxonomyError(f"{source}: department #{i + 1} needs at least 'code' and 'channel'")
            deps.append(
                Department(
                    code=str(d["code"]),
                    name=str(d.get("name") or d["code"]),
                    channel=str(d["channel"]),
                    description=str(d.get("description", "")),
                    typical=tuple(d.get("typical") or ()),
                    links=tuple(str(x) for x in (d.get("links") or ())),
                    covers=tuple(str(x) for x in (d.get("covers") or ())),
                )
            )
        try:
            return cls(
                name=str(raw.get("name", Path(source).stem)),
                departments=deps,
                version=int(raw.get("version", 1)),
                channels=dict(raw.get("channels") or {"110": "110 报警服务台", "12345": "12345 政务服务便民热线"}),
            )
        except TaxonomyError as exc:
            raise TaxonomyError(f"{source}: {exc}") from None

    def save(self, path: str | Path) -> None:
        """Write the taxonomy as JSON (``.json``) or YAML (anything else)."""
        path = Path(path)
        if path.suffix == ".json":
            path.write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=2), encoding="utf-8")
        else:
            path.write_text(yaml.safe_dump(self.to_dict(), allow_unicode=True, sort_keys=False), encoding="utf-8")

    @classmethod
    def from_labels(
        cls,
        departments: Iterable[str],
        channels: Iterable[str | None] | None = None,
        channel_map: Mapping[str, str] | None = None,
        name: str = "inferred",
    ) -> "Taxonomy":
        """Infer a city's taxonomy from the department labels of its tickets.

        Parameters
        ----------
        departments : iterable of str, length n_rows
            Department label of each ticket (e.g. ``处置单位``).
        channels : iterable of str or None, length n_rows, optional
            Channel of each ticket when the export has one; a department takes its majority channel.
        channel_map : mapping department -> channel, optional
            Explicit map; wins over ``channels``. Departments found in neither are assumed ``"12345"``
            (the line a non-urgent ticket export comes from) and a warning names them.
        """
        departments = [str(d) for d in departments]
        votes: dict[str, Counter] = defaultdict(Counter)
        if channels is not None:
            for dep, ch in zip(departments, channels):
                if ch is not None and str(ch).strip():
                    votes[dep][normalise_channel(ch)] += 1
        channel_map = {str(k): normalise_channel(v) for k, v in (channel_map or {}).items()}
        assumed = []
        deps = []
        for code in sorted(set(departments), key=lambda c: (-departments.count(c), c)):
            if code in channel_map:
                ch = channel_map[code]
            elif votes.get(code):
                ch = votes[code].most_common(1)[0][0]
            else:
                ch = "12345"
                assumed.append(code)
            deps.append(Department(code=code, name=code, channel=ch, links=("119",) if "消防" in code else ()))
        if assumed and len(assumed) == len(deps):
            logger.warning(
                "NO CHANNEL INFORMATION: none of the %d departments is known to be 110, so all are taken as 12345; "
                "the model will never suggest 110 and only danger evidence (110 先行 / 三方通话) will reach 110. "
                "Give --channel-column or --channel-map to say which departments are police.", len(deps))
        elif assumed and (channels is not None or channel_map):
            logger.warning("no channel known for %d departments; assumed 12345: %s", len(assumed), ", ".join(assumed[:10]))
        return cls(name=name, departments=deps)


def normalise_channel(value: object) -> str:
    """Map the spellings found in exports (``110``, ``110.0``, ``yes``/``no`` for "handled by police",
    ``公安``/``12345``) to ``"110"`` or ``"12345"``."""
    s = str(value).strip().lower()
    if s.endswith(".0"):
        s = s[:-2]
    if s in {"110", "yes", "y", "true", "1", "police", "公安", "是"}:
        return "110"
    if s in {"12345", "no", "n", "false", "0", "hotline", "否"}:
        return "12345"
    raise TaxonomyError(f"cannot read {value!r} as a channel; expected 110 or 12345 (or yes/no for handled by police)")


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    """Load a taxonomy from YAML or JSON; ``None`` gives the default national taxonomy."""
    path = Path(path) if path else DEFAULT_TAXONOMY_PATH
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TaxonomyError(f"cannot read taxonomy file {path}: {exc.strerror}") from None
    try:
        raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise TaxonomyError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}") from None
    return Taxonomy.from_dict(raw, source=str(path))


def default_taxonomy() -> Taxonomy:
    """The default national taxonomy shipped with the product."""
    return load_taxonomy(DEFAULT_TAXONOMY_PATH)
