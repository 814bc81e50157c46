"""Bundled sample data for `digest demo`: three small feeds in feeds/, one per format,
and the photos of their articles in images/.

- feeds/harbour-times.xml: RSS 2.0, English, 4 items (content:encoded, media:content photos
  with captions and credits, a disclosure paragraph, and site boilerplate to strip)
- feeds/seoul-daily.xml: Atom, Korean, 3 entries (photos as <figure> inside the content)
- feeds/city-notes.json: JSON Feed 1.1, English, 2 items with `image`

Every article is invented. The feeds name their photos under IMAGE_HOST, a reserved
domain; the demo reads copies of them in which IMAGE_HOST is `public_url` + IMAGES_PATH,
where `digest serve` serves images/ (so mail from the demo shows them), and its HTML
preview points at a copy of images/ beside it (so the preview shows them offline).
"""

from pathlib import Path

IMAGES = Path(__file__).parent / "images"
IMAGE_HOST = "https://images.digest.example/"
IMAGES_PATH = "/demo/images/"
