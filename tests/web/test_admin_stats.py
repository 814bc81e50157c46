"""The stats page: an edition really sent through a loopback SMTP server that refuses
one address, then a bounce, a complaint and an unsubscribe, as the admin sees them in
the table and the chart."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from subscribers.lists import get_list
from subscribers.members import remove_member
from subscribers.suppress import suppress
from tests.conftest import Clock
from tests.deliver.conftest import SmtpSink, smtp_server  # noqa: F401  (a fixture)
from tests.test_stats import PEOPLE, Newsroom, newsroom  # noqa: F401  (a fixture)


def _rows(html: str) -> list[list[str]]:
    table = html.split('<table class="stats-table">', 1)[1].split("</table>", 1)[0]
    body = table.split("<tbody>", 1)[1]
    return [[re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>",
                                                                        row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)]


def test_an_editions_numbers_and_chart(newsroom: Newsroom, clock: Clock,  # noqa: F811
                                       admin_client: TestClient) -> None:
    app = newsroom.app
    newsroom.join(*PEOPLE[:4])
    newsroom.publish("Ferry news")
    clock.advance(hours=1)
    second_start = clock()
    newsroom.join(PEOPLE[4])
    newsroom.publish("Harbour news")  # PEOPLE[1] is refused by the server each time
    clock.advance(hours=1)
    with app.sessions() as s:
        suppress(s, PEOPLE[2], "hard_bounce", now=clock())
        suppress(s, PEOPLE[3], "complaint", now=clock())
        remove_member(s, get_list(s, "daily"), PEOPLE[0], now=clock(), reason="link")
        s.commit()

    page = admin_client.get("/admin/stats/daily")
    assert page.status_code == 200
    assert _rows(page.text) == [
        ["2", "Daily: Harbour news", f"{second_start:%Y-%m-%d %H:%M}",
         "5", "4", "1", "1", "1", "1"],
        ["1", "Daily: Ferry news", "2026-11-27 06:00", "4", "3", "1", "0", "0", "0"],
    ]
    svg = page.text.split("<svg", 1)[1].split("</svg>", 1)[0]
    assert 'role="img"' in svg and "<title id=" in svg
    assert ("daily, editions 1 to 2: between 3 and 4 sent per edition; in all 2 failed, "
            "1 bounced, 1 complained and 1 unsubscribed.") in svg
    assert svg.count('class="sent"') == 2 and "<polyline" in svg
    assert "No. 2: 4 sent, 1 failed" in svg

    everything = admin_client.get("/admin/stats")
    assert '<a href="/admin/stats/daily">daily</a>' in everything.text
    assert _rows(everything.text)[0][:6] == ["2", "Daily: Harbour news",
                                             f"{second_start:%Y-%m-%d %H:%M}", "5", "4", "1"]
    assert admin_client.get("/admin/stats/nope").status_code == 404


def test_a_list_without_editions(admin_client: TestClient, newsroom: Newsroom) -> None:  # noqa: F811
    page = admin_client.get("/admin/stats/daily")
    assert "No edition of daily has gone out yet." in page.text and "<svg" not in page.text
