"""The fixed words of the pages a mail's links open (unsubscribe, confirm, preferences,
and the refusals of those links) and of the sign-up form, one table per language, as
`digest.render.labels` holds the mail's own words: a Korean list's reader who follows
구독 취소 lands on Korean, and /subscribe/<a Korean list> asks in Korean.

Placeholders: `{title}` (the list's title, plain: the page's <title>), `{list}` and
`{address}` (the list's title and the masked address as the page marks them up),
`{link}`, `{days}`, `{mailto}`, `{lists}` (the lists signed up to). A language has
every key English has, with the same placeholders (tests/web/test_page_language.py
checks it), and exists here exactly when it exists in `render._LABELS`: a reader never
meets a page in a language their mail was not in, nor the reverse. docs/templates.md
says how to add one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from digest.render import base_language

_WORDS: dict[str, dict[str, str]] = {
    "en": {
        # unsubscribe.html
        "unsubscribe_title": "Unsubscribe from {title}",
        "unsubscribe_heading": "Unsubscribe from {list}?",
        "unsubscribe_body": "{address} will get no more mail from {list}. Other lists it "
                            "is on stay as they are.",
        "unsubscribe_button": "Unsubscribe",
        "already_unsubscribed": "Already unsubscribed",
        "already_unsubscribed_body": "{address} no longer gets {list}. Nothing more to do.",
        "manage_instead": "{link}: choose which lists you get.",
        "manage_instead_link": "Change your preferences instead",
        # _macros.html leave_all_form
        "leave_all_heading": "Leave all mail from us",
        "leave_all_body": "Take this address off every list, and never send it mail again.",
        "leave_all_button": "Leave all mail",
        # unsubscribed.html
        "left_title": "Unsubscribed from {title}",
        "left_heading": "You are unsubscribed",
        "left_body": "{address} will get no more mail from {list}.",
        "left_all_heading": "You will get no more mail from us",
        "left_all_body": "{address} is now off every list, and we will not send it mail "
                         "again.",
        "left_all_already_body": "{address} was already off every list, and we will not "
                                 "send it mail again.",
        # confirm.html
        "confirm_title": "Confirm your subscription to {title}",
        "confirm_heading": "Confirm your subscription to {list}",
        "confirm_body": "Someone, we hope you, asked for {address} to get {list}. Press "
                        "the button to start receiving it.",
        "confirm_button": "Confirm my subscription",
        "confirm_ignore": "If you did not ask for this, close this page: you will get "
                          "nothing more.",
        # confirmed.html
        "confirmed_title": "Subscribed to {title}",
        "confirmed_heading": "Subscription confirmed",
        "confirmed_body": "Thank you. {address} is now subscribed to {list}.",
        "already_confirmed": "Already confirmed",
        "already_confirmed_body": "{address} was already subscribed to {list}. Nothing "
                                  "more to do.",
        "confirmed_note": "Every email has a link at the bottom to unsubscribe.",
        # preferences.html
        "preferences_title": "Your email preferences",
        "preferences_for": "Lists for {address}.",
        "preferences_suppressed": "This address gets no mail from us: it left all mail, or "
                                  "mail to it could not be delivered. Ticking a list does "
                                  "not change that; to get mail again, write to us.",
        "preferences_legend": "Send me",
        "preferences_pending": "(waiting for you to confirm; keep it ticked and save to "
                               "confirm)",
        "preferences_save": "Save my choices",
        "preferences_none": "There are no lists to choose from right now.",
        "saved": "Your choices are saved.",
        "left_all_notice": "You will get no more mail from us.",
        # link_refused.html
        "refused_heading": "This link does not work",
        "expired_heading": "This link has expired",
        "expired_confirm": "Confirmation links work for {days} days. Sign up again where "
                           "you did the first time and we will email you a new link; until "
                           "you confirm, you get no mail from this list.",
        "refused_mailto": "You can also unsubscribe by sending an email to {mailto} with "
                          "the subject \"unsubscribe\".",
        "refused_preferences": "The unsubscribe link at the bottom of every email from us "
                               "leads to a page with a fresh link to your preferences.",
        # subscribe.html
        "subscribe_title": "Subscribe",
        "subscribe_to": "Subscribe to {title}",
        "subscribe_heading": "Subscribe to {list}",
        "subscribe_none": "There are no lists to subscribe to right now.",
        "subscribe_email": "Email address",
        "subscribe_name": "Name",
        "subscribe_optional": "(optional)",
        "subscribe_honeypot": "Leave this field empty",
        "subscribe_legend_one": "List",
        "subscribe_legend": "Lists",
        "subscribe_button": "Subscribe",
        "subscribe_note": "We send you an email to confirm. Every email has a link to "
                          "unsubscribe. Past editions are in the {link}.",
        "subscribe_note_single": "Every email has a link to unsubscribe. Past editions "
                                 "are in the {link}.",
        "subscribe_note_mixed": "Some lists send you an email to confirm first. Every "
                                "email has a link to unsubscribe. Past editions are in "
                                "the {link}.",
        "subscribe_archive": "archive",
        "subscribe_no_email": "Please enter your email address.",
        # English shows email-validator's own reason instead (it is in English).
        "subscribe_bad_email": "This is not a valid email address; check it and send the "
                               "form again.",
        "subscribe_no_list": "Please tick at least one list.",
        # The <title> of a form sent back with an error.
        "error_title": "Error: {title}",
        "reload_heading": "Please reload the page",
        "reload_body": "this form is more than a day old or did not come from this site; "
                       "reload the page, fill it in again and send it",
        "busy_heading": "Too many sign-ups",
        "busy_body": "this network has sent the form several times in a short while; "
                     "please try again in {minutes} min",
        # subscribed.html
        "inbox_title": "Check your inbox",
        "inbox_body": "If the address is new to {lists}, we have sent it an email with a "
                      "link to confirm. Nothing is sent until you click it.",
        "inbox_or": "or",
        "inbox_title_single": "Thank you",
        "inbox_body_single": "If the address is new to {lists}, it is subscribed: the "
                             "next edition goes to it. If it left before, we have sent it "
                             "an email with a link to confirm, to be sure it is you.",
        # The archive copy of an edition (digest.web.archive): its footer.
        "archive_footer": "From the archive of {title}",
        "archive_all": "All editions",
        "archive_subscribe": "Subscribe",
        "inbox_note": "Nothing arrived within a few minutes? Look in the spam folder. If "
                      "the address was subscribed already, it stays subscribed and gets no "
                      "new email.",
    },
    "ko": {
        "unsubscribe_title": "{title} 구독 취소",
        "unsubscribe_heading": "{list} 구독을 취소하시겠습니까?",
        "unsubscribe_body": "{address} 주소로 더 이상 {list} 메일을 보내지 않습니다. "
                            "구독 중인 다른 뉴스레터는 그대로 유지됩니다.",
        "unsubscribe_button": "구독 취소",
        "already_unsubscribed": "이미 구독을 취소하셨습니다",
        "already_unsubscribed_body": "{address} 주소는 이미 {list} 메일을 받지 않습니다. "
                                     "더 하실 일은 없습니다.",
        "manage_instead": "구독을 취소하는 대신 {link}에서 받으실 뉴스레터를 고르실 "
                          "수도 있습니다.",
        "manage_instead_link": "수신 설정",
        "leave_all_heading": "모든 메일 수신 거부",
        "leave_all_body": "이 주소를 모든 뉴스레터에서 빼고, 앞으로 어떤 메일도 보내지 "
                          "않습니다.",
        "leave_all_button": "모든 메일 수신 거부",
        "left_title": "{title} 구독 취소 완료",
        "left_heading": "구독이 취소되었습니다",
        "left_body": "{address} 주소로 더 이상 {list} 메일을 보내지 않습니다.",
        "left_all_heading": "앞으로 메일을 보내지 않습니다",
        "left_all_body": "{address} 주소를 모든 뉴스레터에서 뺐습니다. 앞으로 이 주소로 "
                         "메일을 보내지 않습니다.",
        "left_all_already_body": "{address} 주소는 이미 모든 뉴스레터에서 빠져 있습니다. "
                                 "앞으로 이 주소로 메일을 보내지 않습니다.",
        "confirm_title": "{title} 구독 확인",
        "confirm_heading": "{list} 구독을 확인해 주세요",
        "confirm_body": "{address} 주소로 {list} 뉴스레터 구독이 신청되었습니다. 직접 "
                        "신청하셨다면 아래 버튼을 눌러 구독을 시작하세요.",
        "confirm_button": "구독 확인",
        "confirm_ignore": "신청하신 적이 없다면 이 페이지를 닫으세요. 더 이상 메일을 "
                          "보내지 않습니다.",
        "confirmed_title": "{title} 구독 완료",
        "confirmed_heading": "구독이 확인되었습니다",
        "confirmed_body": "감사합니다. 이제 {address} 주소로 {list} 뉴스레터를 받아 "
                          "보실 수 있습니다.",
        "already_confirmed": "이미 구독이 확인되었습니다",
        "already_confirmed_body": "{address} 주소는 이미 {list} 뉴스레터를 구독 "
                                  "중입니다. 더 하실 일은 없습니다.",
        "confirmed_note": "모든 메일 하단에 구독 취소 링크가 있습니다.",
        "preferences_title": "메일 수신 설정",
        "preferences_for": "{address} 주소로 받으시는 뉴스레터입니다.",
        "preferences_suppressed": "이 주소로는 메일을 보내지 않습니다. 모든 메일 수신을 "
                                  "거부하셨거나 메일이 전달되지 않았기 때문입니다. "
                                  "뉴스레터를 선택하셔도 달라지지 않으니, 메일을 다시 "
                                  "받으시려면 저희에게 연락해 주세요.",
        "preferences_legend": "받으실 뉴스레터",
        "preferences_pending": "(구독 확인을 기다리는 중입니다. 선택한 채로 저장하시면 "
                               "확인됩니다.)",
        "preferences_save": "설정 저장",
        "preferences_none": "지금은 고르실 수 있는 뉴스레터가 없습니다.",
        "saved": "설정이 저장되었습니다.",
        "left_all_notice": "앞으로 메일을 보내지 않습니다.",
        "refused_heading": "이 링크는 사용할 수 없습니다",
        "expired_heading": "링크가 만료되었습니다",
        "expired_confirm": "구독 확인 링크는 {days}일 동안만 유효합니다. 처음 신청하신 "
                           "곳에서 다시 신청하시면 새 링크를 메일로 보내 드립니다. 구독을 "
                           "확인하시기 전에는 이 뉴스레터를 보내지 않습니다.",
        "refused_mailto": "{mailto} 주소로 제목을 \"unsubscribe\"로 하여 메일을 보내셔도 "
                          "구독이 취소됩니다.",
        "refused_preferences": "저희가 보내 드린 메일 하단의 구독 취소 링크를 누르시면 "
                               "수신 설정으로 가는 새 링크가 있는 페이지가 열립니다.",
        "subscribe_title": "구독 신청",
        "subscribe_to": "{title} 구독 신청",
        "subscribe_heading": "{list} 구독 신청",
        "subscribe_none": "지금은 구독하실 수 있는 뉴스레터가 없습니다.",
        "subscribe_email": "이메일 주소",
        "subscribe_name": "이름",
        "subscribe_optional": "(선택)",
        "subscribe_honeypot": "이 칸은 비워 두세요",
        "subscribe_legend_one": "뉴스레터",
        "subscribe_legend": "뉴스레터",
        "subscribe_button": "구독 신청",
        "subscribe_note": "구독을 확인하는 메일을 보내 드립니다. 모든 메일 하단에는 구독 "
                          "취소 링크가 있습니다. 지난 호는 {link}에서 보실 수 있습니다.",
        "subscribe_note_single": "모든 메일 하단에는 구독 취소 링크가 있습니다. 지난 호는 "
                                 "{link}에서 보실 수 있습니다.",
        "subscribe_note_mixed": "일부 뉴스레터는 먼저 구독을 확인하는 메일을 보내 드립니다. "
                                "모든 메일 하단에는 구독 취소 링크가 있습니다. 지난 호는 "
                                "{link}에서 보실 수 있습니다.",
        "subscribe_archive": "지난 호 모음",
        "subscribe_no_email": "이메일 주소를 입력해 주세요.",
        "subscribe_bad_email": "올바른 이메일 주소가 아닙니다. 주소를 확인하고 다시 "
                               "보내 주세요.",
        "subscribe_no_list": "뉴스레터를 하나 이상 선택해 주세요.",
        "error_title": "오류: {title}",
        "reload_heading": "페이지를 새로 고쳐 주세요",
        "reload_body": "이 양식은 하루가 지났거나 이 사이트에서 온 것이 아닙니다. 페이지를 "
                       "새로 고친 뒤 다시 작성해 보내 주세요.",
        "busy_heading": "신청이 너무 많습니다",
        "busy_body": "이 네트워크에서 짧은 시간에 여러 번 신청하셨습니다. {minutes}분 뒤에 "
                     "다시 시도해 주세요.",
        "inbox_title": "메일함을 확인해 주세요",
        "inbox_body": "{lists} 구독이 처음인 주소라면 구독 확인 링크가 담긴 메일을 보내 "
                      "드렸습니다. 링크를 누르시기 전에는 아무 메일도 보내지 않습니다.",
        "inbox_or": "또는",
        "inbox_title_single": "감사합니다",
        "inbox_body_single": "{lists} 구독이 처음인 주소라면 구독이 완료되어 다음 호부터 "
                             "보내 드립니다. 예전에 구독을 취소하신 주소라면 본인 확인을 "
                             "위해 구독 확인 링크가 담긴 메일을 보내 드렸습니다.",
        "archive_footer": "{title} 지난 호 보관함",
        "archive_all": "모든 호 보기",
        "archive_subscribe": "구독하기",
        "inbox_note": "몇 분이 지나도 메일이 오지 않았다면 스팸 메일함을 확인해 주세요. "
                      "이미 구독 중인 주소라면 구독은 그대로 유지되며 새 메일은 보내지 "
                      "않습니다.",
    },
}

# Why a signed link is refused, as the core words it (subscribers.members), in the
# languages a list can have. The core owns the rule and its English; a refusal whose
# English is not here is shown in English, under a heading in the list's language.
_REFUSALS: dict[str, dict[str, str]] = {
    "ko": {
        "this link has expired; ask for a new one":
            "이 링크는 사용 기간이 지났습니다. 새 링크를 요청해 주세요.",
        "this link no longer works: the address it was sent to is not subscribed any "
        "more; ask for a new one":
            "이 링크는 더 이상 사용할 수 없습니다. 링크를 받으신 주소가 구독 중이 "
            "아닙니다. 새 링크를 요청해 주세요.",
        "this link is not for a list you are on; ask for a new one":
            "구독 중인 뉴스레터의 링크가 아닙니다. 새 링크를 요청해 주세요.",
        "this subscription was cancelled after the link was sent; subscribe again to get "
        "a new confirmation link":
            "링크를 보내 드린 뒤 구독이 취소되었습니다. 다시 신청하시면 새 확인 링크를 "
            "보내 드립니다.",
        "this confirmation link was sent for an earlier sign-up of this address; use the "
        "link in the newest confirmation email":
            "이 확인 링크는 이 주소로 예전에 신청하셨을 때 보내 드린 것입니다. 가장 최근에 "
            "받으신 확인 메일의 링크를 사용해 주세요.",
    },
}


def words(language: str) -> Mapping[str, str]:
    """The pages' fixed words in `language` (English when unknown)."""
    return _WORDS.get(base_language(language), _WORDS["en"])


def page_language(language: str) -> str:
    """The `<html lang>` of a page whose list is in `language`: the list's own tag when
    its words exist, else "en", the language the page then speaks."""
    return language if base_language(language) in _WORDS else "en"


def shared_language(languages: Iterable[str]) -> str:
    """The one language all of `languages` share, by its words; "en" when they differ
    or there are none."""
    keys = {base_language(lang) for lang in languages}
    if len(keys) == 1 and (key := keys.pop()) in _WORDS:
        return key
    return "en"


def refusal(language: str, message: str) -> str:
    """The core's refusal `message` (English) in `language`, when it has been
    translated; else as it is."""
    return _REFUSALS.get(base_language(language), {}).get(message.rstrip("."), message)


def languages() -> frozenset[str]:
    """The languages the pages speak."""
    return frozenset(_WORDS)
