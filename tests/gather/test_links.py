"""The link a reader gets in mail (`clean_link`): the host as DNS reads it, no tracking
tags in the query or the fragment, and everything else (path, anchors) as the feed wrote it.

The links are shaped on the corpus: scripting.com's `#a080605` anchors, Google Books'
`#v=onepage&q&f=false`, huffingtonpost.ca's utm-tagged links.
"""

from __future__ import annotations

import pytest

from digest.gather.links import clean_link, link_key


def test_the_host_is_lower_case_and_the_path_keeps_its_case() -> None:
    assert clean_link("https://Example.ORG/Politics/A-Story") == \
        "https://example.org/Politics/A-Story"
    assert clean_link("https://WWW.HuffingtonPost.ca:8443/2017/09/25/Dolls/?utm_source=x") == \
        "https://www.huffingtonpost.ca:8443/2017/09/25/Dolls/"
    # A login in the link (rare, but a feed may carry one) keeps its case: it is no host.
    assert clean_link("https://Editor:S3cret@News.Example.org/a") == \
        "https://Editor:S3cret@news.example.org/a"


def test_tracking_tags_in_the_fragment_are_dropped() -> None:
    assert clean_link("https://example.org/a#utm_source=rss&utm_medium=feed") == \
        "https://example.org/a"
    assert clean_link("https://example.org/a?id=5#utm_campaign=daily&fbclid=x") == \
        "https://example.org/a?id=5"
    # What is left of the fragment stays, as written.
    assert clean_link("https://example.org/a#page=2&utm_source=rss") == \
        "https://example.org/a#page=2"


@pytest.mark.parametrize("link", [
    "http://scripting.com/2017/06/26.html#a080605",
    "https://example.org/guide#section-2",
    "https://books.google.de/books?id=_MceYURa3VcC&printsec=frontcover#v=onepage&q&f=false",
    "https://docs.google.com/spreadsheets/d/12wA1pOrT/edit#gid=0",
    "https://mail.example.org/#!/inbox",
])
def test_real_anchors_are_kept_as_written(link: str) -> None:
    assert clean_link(link) == link


def test_the_parameters_kept_keep_their_spelling() -> None:
    # Re-encoding would turn %20 into +, and drop the blank `q`.
    assert clean_link("https://example.org/search?q=harbour%20wall&utm_source=rss&sort") == \
        "https://example.org/search?q=harbour%20wall&sort"


def test_a_clean_link_is_the_same_page_to_link_key() -> None:
    tagged = "http://Example.ORG/a/?utm_source=rss#utm_medium=feed"
    assert link_key(clean_link(tagged)) == link_key(tagged) == "example.org/a"
