"""The DNS records a sender's domain needs (SPF, DKIM, DMARC), and whether DNS has them.

Gmail and Yahoo take bulk mail only with SPF and DKIM passing and a DMARC record of at
least p=none (email-providers.md §8). `needed` says what to publish for the settings in
use; `check` looks each up (dnspython, a short timeout) and compares. Offline, or with
no resolver answering, each record is "could not look up", never an error.

SPF is checked against the envelope sender (MAIL FROM), so with `[delivery] return_path`
set (SMTP and the outbox) its record belongs at the return path's domain, and DMARC
counts that SPF pass only when that domain aligns with the From domain (relaxed: the
same organizational domain). `aligned` judges that approximately, without the Public
Suffix List: one name is the other or under it, or both end in the same registered
name (the last two labels, three under a two-letter country code's co/com/net/org/ac/
gov/edu, like example.co.uk). With an API backend the provider signs with keys set up in
its console: no `[dkim]` key of ours is shown as if it were used.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import dns.exception
import dns.resolver

from digest.deliver.dkim import SIGNING_BACKENDS, DkimSigner, txt_strings
from digest.deliver.verp import ReturnPath
from digest.errors import InvalidInput

if TYPE_CHECKING:
    from digest.config import Settings

State = Literal["ok", "missing", "differs", "could not look up", "not checked"]
#: TXT records at a name (each record's strings joined), [] for none, None when DNS
#: gave no answer at all (offline, timeout, no resolver).
Lookup = Callable[[str], "list[str] | None"]

#: What each API provider's SPF include is (their setup guides).
_PROVIDER_SPF = {"ses": "include:amazonses.com", "postmark": "include:spf.mtasv.net",
                 "sendgrid": "include:sendgrid.net", "mailgun": "include:mailgun.org"}
#: What each API provider's DKIM setup asks for (their setup guides).
_PROVIDER_DKIM = {
    "ses": ("<token>._domainkey.{domain}",
            "Amazon SES signs (Easy DKIM): publish the three CNAME records "
            "<token>._domainkey.{domain} -> <token>.dkim.amazonses.com that the SES "
            "console shows for the identity {domain}"),
    "postmark": ("<selector>pm._domainkey.{domain}",
                 "Postmark signs: publish the DKIM TXT record and the Return-Path CNAME "
                 "(pm-bounces.{domain} -> pm.mtasv.net) its console shows for {domain} "
                 "(Sender Signatures / Domains)"),
    "sendgrid": ("s1._domainkey.{domain}",
                 "SendGrid signs: publish the CNAME records its console's Domain "
                 "Authentication shows for {domain} (s1._domainkey, s2._domainkey and "
                 "em<number> for the return path)"),
    "mailgun": ("<selector>._domainkey.{domain}",
                "Mailgun signs: publish the DKIM TXT record (and the SPF and MX records) "
                "its console shows under the sending domain's DNS records"),
}
TIMEOUT = 3.0
_SECOND_LEVEL = frozenset(("co", "com", "net", "org", "ac", "gov", "edu"))


@dataclass(frozen=True)
class Record:
    """One TXT record to publish: what it is for, where, and its text."""

    kind: str  # "SPF", "DKIM", "DMARC"
    name: str  # the owner name, without the trailing dot
    value: str  # the whole text; `strings` cuts it for DNS
    note: str = ""
    state: State = "not checked"
    found: str = ""  # what DNS holds there now (the matching or first such record)
    lookup: bool = True  # False: a name only the provider's console knows

    @property
    def strings(self) -> list[str]:
        return txt_strings(self.value)

    @property
    def zone_line(self) -> str:
        """The record as a zone-file line, long values as several quoted strings."""
        quoted = " ".join(f'"{s}"' for s in self.strings)
        return f"{self.name}. IN TXT {quoted}" if len(self.strings) == 1 else \
            f"{self.name}. IN TXT ( {quoted} )"


def needed(settings: Settings, domain: str) -> list[Record]:
    """The SPF, DKIM and DMARC records `domain` needs for the backend and key in use.
    Raises InvalidInput for a name that is no domain; ConfigError for an unusable key."""
    domain = domain.strip().rstrip(".").lower()
    if "." not in domain or any(not part for part in domain.split(".")):
        raise InvalidInput(f"{domain!r} is not a domain name; give the one in your from "
                           "address, like --domain news.example.org")
    backend = settings["delivery.backend"]
    pattern = settings["delivery.return_path"].strip()
    # Only its domain is needed: no signing key (which would be made on first use).
    envelope = ReturnPath(pattern, "check-dns").domain \
        if pattern and backend in SIGNING_BACKENDS else ""
    records = [_spf(settings, domain, envelope)]
    if backend in _PROVIDER_DKIM:
        name, hint = (t.format(domain=domain) for t in _PROVIDER_DKIM[backend])
        if settings["dkim.domain"]:
            hint += f"; [dkim] private_key_file is not used with {backend}"
        records.append(Record("DKIM", name, "", hint, lookup=False))
    elif settings["dkim.domain"]:
        signer = DkimSigner.load(domain, settings["dkim.selector"],
                                 settings["dkim.private_key_file"])
        dkim_domain = settings["dkim.domain"].rstrip(".").lower()
        note = "" if dkim_domain == domain else (
            f"[dkim] domain is {settings['dkim.domain']}: mail is signed as that domain")
        if not aligned(dkim_domain, domain):
            note += (f"; WARNING: it does not align with {domain} for DMARC "
                     "(approximate check): sign as the From domain or one under it")
        if signer.bits < 2048:
            note = f"{note}; " if note else ""
            note += f"the key has {signer.bits} bits: 2048 is advised"
        records.append(Record("DKIM", signer.record_name, signer.record, note))
    else:
        hint = ("no [dkim] key is set: set [dkim] domain, selector and private_key_file, "
                "or let your relay sign")
        records.append(Record("DKIM", f"{settings['dkim.selector']}._domainkey.{domain}", "",
                              hint))
    records.append(Record("DMARC", f"_dmarc.{domain}",
                          f"v=DMARC1; p=none; rua=mailto:dmarc-reports@{domain}",
                          "p=none only reports; move to quarantine once reports are clean"))
    return records


def check(records: list[Record], lookup: Lookup) -> list[Record]:
    """Each record with what DNS holds and whether it will do."""
    return [_compare(r, lookup(r.name)) if r.lookup else r for r in records]


def aligned(one: str, other: str) -> bool:
    """Whether two domains align for DMARC in relaxed mode (same organizational domain),
    approximately: see the module's docstring."""
    return _organizational(one) == _organizational(other)


def _organizational(domain: str) -> str:
    labels = domain.strip().rstrip(".").lower().split(".")
    keep = 3 if (len(labels) >= 3 and len(labels[-1]) == 2
                 and labels[-2] in _SECOND_LEVEL) else 2
    return ".".join(labels[-keep:])


def resolver_lookup(nameserver: str = "", timeout: float = TIMEOUT) -> Lookup:
    """A Lookup through dnspython: the system's resolvers, or `nameserver` (HOST or
    HOST:PORT) alone, each name given `timeout` seconds in all."""
    try:
        resolver = dns.resolver.Resolver(configure=not nameserver)
    except dns.resolver.NoResolverConfiguration:  # no /etc/resolv.conf: offline
        return lambda name: None
    if nameserver:
        host, _, port = nameserver.rpartition(":") if nameserver.count(":") == 1 else \
            (nameserver, "", "")
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise InvalidInput(f"--nameserver {nameserver!r}: give an IP address, "
                               "optionally :port, like 1.1.1.1 or 127.0.0.1:5353") from None
        resolver.nameservers = [host]
        resolver.port = int(port) if port.isdigit() else 53
    resolver.lifetime = timeout

    def lookup(name: str) -> list[str] | None:
        try:
            answer = resolver.resolve(name, "TXT", search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except (dns.exception.DNSException, OSError):
            return None
        return [b"".join(rdata.strings).decode("utf-8", "replace") for rdata in answer]

    return lookup


def _spf(settings: Settings, from_domain: str, envelope_domain: str) -> Record:
    """SPF for the envelope sender's domain: the return path's when one is set (and a
    warning when it cannot align with the From domain), else the From domain."""
    backend = settings["delivery.backend"]
    domain = envelope_domain or from_domain
    if envelope_domain:
        note = (f"at {domain}, the domain of [delivery] return_path: receivers check SPF "
                f"for the envelope sender (MAIL FROM), not the From address")
        if not aligned(domain, from_domain):
            note += (f"; WARNING: {domain} does not align with {from_domain} for DMARC "
                     "(approximate check: same registered domain), so this SPF pass "
                     "does not count toward DMARC: DKIM must pass as the From domain, "
                     f"or use a return path under {from_domain}")
    else:
        note = "for the envelope sender's domain (the from address's)"
    if backend in _PROVIDER_SPF:
        mechanism = _PROVIDER_SPF[backend]
    elif backend == "smtp" and settings["smtp.host"] not in ("localhost", "127.0.0.1", "::1"):
        host = settings["smtp.host"]
        try:
            ip = ipaddress.ip_address(host)
            mechanism = f"ip{ip.version}:{ip}"
        except ValueError:
            mechanism = f"a:{host}"
        note = f"lets the relay {host} send for {domain}; " + note
    else:
        mechanism = "mx"
        note = ("this machine's mail server sends: add ip4:<its public address> if that "
                "is not the domain's MX; " + note)
    return Record("SPF", domain, f"v=spf1 {mechanism} ~all", note)


def _tags(text: str) -> dict[str, str]:
    tags = {}
    for part in text.split(";"):
        key, eq, value = part.partition("=")
        if eq:
            tags[key.strip().lower()] = "".join(value.split())
    return tags


def _compare(r: Record, found: list[str] | None) -> Record:
    def done(state: State, text: str = "") -> Record:
        return Record(r.kind, r.name, r.value, r.note, state, text)

    if found is None:
        return done("could not look up")
    if r.kind == "SPF":
        spf = [t for t in found if t.lower().startswith("v=spf1")]
        if not spf:
            return done("missing")
        if len(spf) > 1:  # RFC 7208 §4.5: a permanent error, SPF fails for everyone
            return Record(r.kind, r.name, r.value, "two SPF records: merge them into one",
                          "differs", " | ".join(spf))
        wanted = r.value.split()[1].lower()
        terms = [t.lstrip("+").lower() for t in spf[0].split()]
        return done("ok" if wanted in terms else "differs", spf[0])
    prefix = "v=dkim1" if r.kind == "DKIM" else "v=dmarc1"
    ours = [t for t in found if "".join(t.split()).lower().startswith(prefix)
            or (r.kind == "DKIM" and "p=" in t)]
    if not ours:
        return done("missing")
    if not r.value:  # a DKIM record we cannot judge (no key here)
        return done("not checked", ours[0])
    if r.kind == "DKIM":
        key = _tags(r.value)["p"]
        match = next((t for t in ours if _tags(t).get("p") == key), None)
        return done("ok", match) if match else done("differs", ours[0])
    return done("ok" if _tags(ours[0]).get("p") in ("none", "quarantine", "reject")
                else "differs", ours[0])
