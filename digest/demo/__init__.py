"""Bundled sample data for `digest demo`: three small feeds in feeds/, one per format.

- feeds/harbour-times.xml: RSS 2.0, English, 4 items (content:encoded, media:content photos
  with captions and credits, a disclosure paragraph, and site boilerplate to strip)
- feeds/seoul-daily.xml: Atom, Korean, 3 entries (photos as <figure> inside the content)
- feeds/city-notes.json: JSON Feed 1.1, English, 2 items with `image`

Every article is invented; images point at https://images.digest.example/, which the
demo never fetches.
"""
