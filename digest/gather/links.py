"""Links as a reader should get them, and the key that says two links are one page.

Feeds tag their links for analytics (`utm_source`, `fbclid`, Mailchimp's `mc_cid`, ...);
the same story reaches a list through two feeds with different tags, or once over http
and once over https, or with and without a trailing slash. `clean_link` lower-cases the
host and drops the tracking parameters (of the query or the fragment) and nothing else;
`link_key` is what two links to one page share.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, unquote_plus, urlencode, urlsplit, urlunsplit

# Query parameters that only say who sent the click: exact names (lower case, as
# `is_tracking` compares them), plus the prefixes below.
TRACKING = frozenset({
    "fbclid", "gclid", "gclsrc", "dclid", "gbraid", "wbraid", "msclkid", "yclid",
    "twclid", "ttclid", "li_fat_id", "igshid", "mc_cid", "mc_eid", "_ga", "_gl",
    "_hsenc", "_hsmi", "__hssc", "__hstc", "__hsfp", "hsctatracking", "mkt_tok",
    "oly_anon_id", "oly_enc_id", "vero_conv", "vero_id", "wickedid", "rb_clickid",
    "s_cid", "ncid", "sr_share", "cmpid", "ito", "at_medium", "at_campaign",
    "wt_mc", "wt_zmc",  # Webtrekk (Mapp): heise.de tags each feed's links ("rss.ho.beitrag.rdf")
    "xtor",  # AT Internet: Le Monde's "#xtor=RSS-3208"
    "cmp",  # the Guardian's and the BBC's campaign tag ("CMP=share_btn_tw")
    "smid",  # the New York Times' share tag ("smid=tw-nytimes")
    "__twitter_impression",  # Twitter's link cards
    "guccounter", "guce_referrer", "guce_referrer_sig",  # Yahoo's consent redirect
    "s_kwcid",  # Adobe Analytics' ad keyword
    # Internal campaign and Alibaba's position tags: common enough, and none of the
    # corpus's links uses either name for what a page shows (surveyed, issue 10).
    "icid", "spm",
})
# Prefixes: Google's utm_, Matomo's pk_ and mtm_, Webtrends' WT. ("WT.mc_id"), comScore's
# ns_ ("ns_campaign", "ns_mchannel").
_TRACKING_PREFIXES = ("utm_", "pk_", "mtm_", "ga_", "wt.", "ns_")
_DEFAULT_PORTS = {"http": "80", "https": "443"}
_SLASHES = re.compile(r"/+$")


def is_tracking(name: str) -> bool:
    """True for a query parameter that only tags the click (utm_*, fbclid, WT.mc_id, ...)."""
    name = name.lower()
    return name in TRACKING or name.startswith(_TRACKING_PREFIXES)


def clean_link(url: str) -> str:
    """`url` as a reader should get it: the host in lower case, without tracking
    parameters in the query or the fragment (`#utm_source=rss`, as some feeds tag their
    links), and without a fragment that held nothing else. The rest (scheme, path,
    the order and spelling of the other parameters, a real anchor such as `#section-2`
    or Google Books' `#v=onepage&q&f=false`) stays as the feed wrote it.

    A URL that is not http(s) or cannot be read is returned as it is.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.scheme.lower() not in _DEFAULT_PORTS:
        return url
    user, at, host = parts.netloc.rpartition("@")
    query, fragment = _untracked(parts.query), _untracked(parts.fragment)
    cleaned = parts._replace(netloc=user + at + host.lower(), query=query, fragment=fragment)
    return url if cleaned == parts else urlunsplit(cleaned)


def _untracked(params: str) -> str:
    """A query or fragment ("a=1&utm_source=rss") without its tracking parameters.

    Split by hand rather than parsed and re-encoded: the parameters kept are kept as
    written (`%20` stays `%20`, a blank `q` stays `q`), and a fragment that is no list
    of parameters (`#section-2`, `#a123`, `#!/inbox`) has no tracking name in it.
    """
    if not params:
        return params
    pieces = params.split("&")
    kept = [p for p in pieces if not is_tracking(unquote_plus(p.partition("=")[0]))]
    return params if len(kept) == len(pieces) else "&".join(kept)


def link_key(url: str) -> str:
    """What every link to one page shares: host (lowercase, no default port) and path
    (no trailing slash) and the query without tracking parameters, sorted; the scheme
    and the fragment left out. "" for "" or a link that is not http(s)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return ""
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return ""
    host = parts.hostname.rstrip(".")
    if port is not None and str(port) != _DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    path = _SLASHES.sub("", parts.path) or ""
    query = sorted((k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
                   if not is_tracking(k))
    key = host + path
    return f"{key}?{urlencode(query)}" if query else key


#: The longest link kept whole (Article.link's and image_url's column length).
LINK_MAX = 2000


def whole_link(url: str) -> str:
    """`url`, or "" when it is longer than LINK_MAX. Never cut: a cut URL is a broken
    link in mail, worse than none, and would not match the feed's link next time."""
    return url if len(url) <= LINK_MAX else ""
