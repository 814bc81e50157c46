"""The mail providers' webhooks: `POST /webhooks/<provider>`, bounces and complaints
taken in through `digest.feedback` (docs/operations.md, "Webhooks").

No login, no CSRF token and no session cookie: each provider's request is verified
its own way in its module (Postmark: basic auth; SendGrid: an ECDSA signature;
Mailgun: an HMAC), and `intake` holds what they share: refusals (a 4xx and one log
line, nothing changed), time bounds, replay keys, and recording in one transaction.
They sit outside /admin and /api, so the console's and the API's authentication never
applies to them.
"""

from __future__ import annotations

from fastapi import APIRouter

from digest.web.webhooks import mailgun, postmark, sendgrid, ses

#: The largest request taken: a SendGrid batch is well under 1 MB, and a Postmark bounce
#: that carries the bounced message's content (Content) may be a few hundred KB.
MAX_BODY = 4 * 1024 * 1024

router = APIRouter(prefix="/webhooks", include_in_schema=False, max_body_size=MAX_BODY)
router.include_router(postmark.router)
router.include_router(sendgrid.router)
router.include_router(mailgun.router)
router.include_router(ses.router)  # Amazon SES, by SNS notifications
