"""The resident's side: describe a problem, answer only what is missing, confirm, follow progress.

Handlers are thin: they read the update, call the classifier and the complaint service, and
render :mod:`dialogs.texts`. The draft complaint lives in the FSM data (in the database), so a
restart in the middle of a dialog continues where the resident was.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta
from typing import Any

from aiogram import F, Router
from aiogram.enums import ChatType
from aiogram.filters import Command, CommandStart, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message, ReplyKeyboardRemove

from bot.container import App
from complaints.model import (
    CATEGORY_LABELS,
    Attachment,
    Channel,
    Contact,
    DomainError,
    Location,
    Status,
    Urgency,
    mask_phone,
)
from complaints.services import NewComplaint
from dialogs import keyboards as kb
from dialogs import texts
from dialogs.keyboards import ComplaintAction, DraftAction
from dialogs.middlewares import Person

MAX_PHOTOS = 5
MAX_STORED_TEXT = 10_000
LOW_CONFIDENCE = 0.5
_PHONE = re.compile(r"^\+?(?:86)?[\s-]*(1[3-9]\d[\s-]?\d{4}[\s-]?\d{4}|0\d{2,3}[\s-]?\d{7,8})$")
_MEANINGFUL = re.compile(r"[^\W_]")  # letters and digits of any script; not emoji or punctuation
# Said to a help desk before the problem itself: answered, not filed as a complaint.
_GREETING = re.compile(r"^(你好|您好|在吗|在不在|有人吗|hi|hello|哈喽|嗨|喂)[呀啊吗呢!!。.,,~～\s]*$", re.I)
_THANKS = re.compile(r"^(谢谢|多谢|感谢|好的|好|ok|嗯|收到|知道了)[了你您啦呀啊!!。.,,~～\s]*$", re.I)
ADD_INFO_IDLE = timedelta(minutes=30)  # after this, a new message is a new complaint again
ALERT_LIMIT = 200  # Telegram's limit for a callback answer


def _meaningful(text: str, minimum: int = 1) -> bool:
    return len(_MEANINGFUL.findall(text)) >= minimum


class Intake(StatesGroup):
    text = State()  # photos arrived first; waiting for words
    location = State()
    contact = State()
    confirm = State()
    category = State()


class AddInfo(StatesGroup):
    collecting = State()


_STEP_HINTS: dict[str, str] = {
    Intake.text.state: texts.HINT_TEXT, Intake.location.state: texts.HINT_LOCATION,
    Intake.contact.state: texts.HINT_CONTACT, Intake.confirm.state: texts.HINT_CONFIRM,
    Intake.category.state: texts.HINT_CATEGORY, AddInfo.collecting.state: texts.HINT_ADD_INFO,
}


def make_router() -> Router:
    """A fresh router each time: a module-level router can be attached to one dispatcher only."""
    router = Router(name="residents")
    # A resident talks to the bot privately; chatter in a group is nobody's complaint.
    router.message.filter(F.chat.type == ChatType.PRIVATE)

    router.message.register(on_start, CommandStart())
    router.message.register(on_help, Command("help"))
    router.message.register(on_help, F.text == texts.MENU_HELP)
    router.message.register(on_cancel, Command("cancel"))
    router.message.register(on_cancel, F.text == texts.CANCEL)
    router.message.register(on_my, Command("my"))
    router.message.register(on_my, F.text == texts.MENU_MY)
    router.message.register(on_contact_desk, F.text == texts.MENU_CONTACT)
    router.message.register(on_complain_menu, F.text == texts.MENU_COMPLAIN)
    router.message.register(on_emergency_menu, F.text == texts.MENU_EMERGENCY)
    router.message.register(on_unknown_command, F.text.startswith("/"))

    router.message.register(on_add_info, AddInfo.collecting, F.text | F.photo | F.video)
    router.message.register(on_location_text, Intake.location, F.text)
    router.message.register(on_location_pin, Intake.location, F.location)
    router.message.register(on_contact_shared, StateFilter(Intake.contact, Intake.confirm), F.contact)
    router.message.register(on_contact_text, Intake.contact, F.text)
    router.message.register(on_media, F.photo | F.video)
    router.message.register(on_text_in_confirm, StateFilter(Intake.confirm, Intake.category), F.text)
    router.message.register(on_text, F.text)
    router.message.register(on_unsupported)

    router.callback_query.register(on_draft_button, DraftAction.filter())
    router.callback_query.register(on_complaint_button, ComplaintAction.filter())
    router.callback_query.register(on_stale_button)
    return router


# ---- helpers --------------------------------------------------------------------------------------
def _location_dict(loc: Any, text: str | None) -> dict[str, Any] | None:
    if loc is None:
        return None
    data = {"building": loc.building, "unit": loc.unit, "room": loc.room, "area": loc.area, "text": text}
    return data if any(v for k, v in data.items() if k != "text") else None


def _location_label(data: dict[str, Any] | None) -> str | None:
    if not data:
        return None
    return Location(**data).describe()


def _normalise_phone(text: str) -> str | None:
    match = _PHONE.match(text.strip())
    return re.sub(r"[\s-]", "", match.group(1)) if match else None


def _categories(classifier: Any) -> dict[str, str]:
    return dict(getattr(classifier, "categories", None) or CATEGORY_LABELS)


# ---- menu and commands ----------------------------------------------------------------------------
async def on_start(message: Message, state: FSMContext, person: Person) -> None:
    await state.clear()
    await person.resident()
    name = message.from_user.first_name if message.from_user else None
    await message.answer(texts.welcome(name), reply_markup=kb.main_menu())


async def on_help(message: Message) -> None:
    await message.answer(texts.HELP, reply_markup=kb.main_menu())


async def on_cancel(message: Message, state: FSMContext) -> None:
    had_state = await state.get_state() is not None
    await state.clear()
    await message.answer(texts.CANCELLED if had_state else texts.NOTHING_TO_CANCEL, reply_markup=kb.main_menu())


async def on_contact_desk(message: Message, app: App) -> None:
    await message.answer(texts.CONTACT_DESK.format(hotline=texts.q(app.settings.hotline)))


async def on_complain_menu(message: Message, state: FSMContext) -> None:
    await state.clear()
    await message.answer(texts.ASK_TEXT, reply_markup=ReplyKeyboardRemove())


async def on_emergency_menu(message: Message, state: FSMContext, app: App) -> None:
    await state.clear()
    await state.update_data(emergency=True)
    await message.answer(texts.EMERGENCY_START.format(hotline=texts.q(app.settings.hotline)))


async def on_unknown_command(message: Message) -> None:
    await message.answer(texts.UNKNOWN_COMMAND)


async def on_unsupported(message: Message, state: FSMContext) -> None:
    """Stickers, voice, files, a pin or a contact out of place: say what we can take, keep the draft."""
    if message.sticker:
        answer = texts.UNSUPPORTED_STICKER
    elif message.voice or message.audio or message.video_note:
        answer = texts.UNSUPPORTED_VOICE
    elif message.document:
        answer = texts.UNSUPPORTED_FILE
    elif message.location or message.venue:
        answer = texts.UNSUPPORTED_LOCATION
    elif message.contact:
        answer = texts.UNSUPPORTED_CONTACT
    else:
        answer = texts.UNSUPPORTED
    # In the middle of a complaint, remind the resident what we are waiting for.
    hint = _STEP_HINTS.get(await state.get_state() or "", "")
    await message.answer(f"{answer}\n{hint}" if hint else answer)


# ---- intake -------------------------------------------------------------------------------------
async def on_text(message: Message, state: FSMContext, app: App, classifier: Any, person: Person) -> None:
    text = (message.text or "").strip()
    data = await state.get_data()
    if not data.get("photos"):
        # Small talk before the problem is described is answered, not filed.
        if _GREETING.match(text):
            await message.answer(texts.GREETING, reply_markup=kb.main_menu())
            return
        if _THANKS.match(text):
            await message.answer(texts.YOU_ARE_WELCOME)
            return
    if not _meaningful(text, 2):
        await message.answer(texts.EMPTY_TEXT)
        return
    await _start_draft(message, state, app, person, classifier, text[:MAX_STORED_TEXT],
                       photos=list(data.get("photos", [])), emergency=bool(data.get("emergency")))


async def on_media(message: Message, state: FSMContext, app: App, classifier: Any, person: Person) -> None:
    attachment = _attachment(message)
    data = await state.get_data()
    photos: list[dict[str, Any]] = list(data.get("photos", []))
    current = await state.get_state()
    if len(photos) >= MAX_PHOTOS:
        if data.get("warned_group") != (message.media_group_id or message.message_id):
            await state.update_data(warned_group=message.media_group_id or message.message_id)
            await message.answer(texts.TOO_MANY_PHOTOS)
        return
    group = message.media_group_id
    if current is None and group and data.get("submitted_group") == group:
        # The rest of an album whose first photo already filed the complaint (an emergency
        # with its location in the caption): the pictures belong to that complaint.
        resident = await person.resident()
        await app.complaints.add_info(data["submitted_number"], by=resident.as_actor(),
                                      attachments=[Attachment(**attachment)])
        return
    photos.append(attachment)
    await state.update_data(photos=photos)
    caption = (message.caption or "").strip()
    if caption and current in (None, Intake.text.state) and _meaningful(caption, 2):
        await _start_draft(message, state, app, person, classifier, caption[:MAX_STORED_TEXT], photos=photos,
                           emergency=bool(data.get("emergency")), group=group)
        return
    if current is None:
        await state.set_state(Intake.text)
    # One answer per album, not one per picture.
    if group and data.get("last_group") == group:
        return
    await state.update_data(last_group=group)
    if current in (None, Intake.text.state):
        await message.answer(texts.ASK_TEXT_FOR_PHOTOS)
    else:
        await message.answer(texts.PHOTO_ADDED.format(n=len(photos)))


def _attachment(message: Message) -> dict[str, Any]:
    if message.photo:
        return {"kind": "photo", "file_id": message.photo[-1].file_id, "caption": message.caption}
    assert message.video is not None
    return {"kind": "video", "file_id": message.video.file_id, "caption": message.caption}


async def _start_draft(message: Message, state: FSMContext, app: App, person: Person, classifier: Any,
                       text: str, *, photos: list[dict[str, Any]], emergency: bool, group: str | None = None) -> None:
    result = classifier.classify(text)
    resident = await person.resident()
    urgency = Urgency.EMERGENCY if emergency else Urgency(result.urgency)
    location = _location_dict(result.location, None)
    draft: dict[str, Any] = {
        "draft": secrets.token_hex(4), "text": text, "photos": photos, "category": result.category,
        "secondary": list(result.secondary), "urgency": str(urgency), "emotion": result.emotion,
        "confidence": float(result.confidence), "location": location,
        "location_label": _location_label(location), "anonymous": False, "phone": None,
        "last_group": group,  # the rest of this album joins the draft without more answers
    }
    phone = result.phone or resident.phone
    if phone:
        draft.update(phone=phone, phone_masked=mask_phone(phone))
    elif resident.prefers_anonymous:
        draft["anonymous"] = True
    await state.set_data(draft)
    if result.emotion == "angry":
        await message.answer(texts.EMPATHY)
    await _advance(message, state, app, person, draft)


async def _advance(message: Message, state: FSMContext, app: App, person: Person, draft: dict[str, Any]) -> None:
    """Ask only what is still missing; emergencies ask at most for the location."""
    emergency = draft["urgency"] == Urgency.EMERGENCY
    if draft.get("location") is None and not draft.get("location_skipped"):
        await state.set_state(Intake.location)
        text = (texts.ASK_LOCATION_EMERGENCY.format(hotline=texts.q(app.settings.hotline))
                if emergency else texts.ASK_LOCATION)
        await message.answer(text, reply_markup=kb.areas_keyboard(draft["draft"], emergency=emergency))
        return
    if emergency:
        await _submit(message, state, app, person, draft)
        return
    if not draft.get("phone") and not draft.get("anonymous"):
        await state.set_state(Intake.contact)
        await message.answer(texts.ASK_CONTACT, reply_markup=kb.contact_keyboard())
        return
    await _show_card(message, state, draft)


async def _show_card(message: Message, state: FSMContext, draft: dict[str, Any]) -> None:
    await state.set_state(Intake.confirm)
    low = draft.get("confidence", 1.0) < LOW_CONFIDENCE
    await message.answer(texts.confirm_card(draft, low_confidence=low), reply_markup=kb.confirm_keyboard(draft["draft"]))


async def on_location_text(message: Message, state: FSMContext, app: App, classifier: Any,
                           person: Person) -> None:
    text = (message.text or "").strip()[:200]
    if not _MEANINGFUL.search(text):
        await message.answer(texts.ASK_LOCATION)
        return
    draft = await state.get_data()
    location = _location_dict(classifier.classify(text).location, text) or {
        "building": None, "unit": None, "room": None, "area": None, "text": text}
    draft.update(location=location, location_label=_location_label(location))
    await state.set_data(draft)
    await _advance(message, state, app, person, draft)


async def on_location_pin(message: Message, state: FSMContext, app: App, person: Person) -> None:
    assert message.location is not None
    text = f"定位 {message.location.latitude:.5f},{message.location.longitude:.5f}"
    draft = await state.get_data()
    location = {"building": None, "unit": None, "room": None, "area": None, "text": text}
    draft.update(location=location, location_label=text)
    await state.set_data(draft)
    await _advance(message, state, app, person, draft)


async def on_contact_shared(message: Message, state: FSMContext, app: App, person: Person) -> None:
    contact = message.contact
    assert contact is not None and message.from_user is not None
    # Only the resident's own number (the request_contact button sends it with their user_id);
    # a card from the address book has another user_id, or none at all.
    if contact.user_id != message.from_user.id:
        await message.answer(texts.CONTACT_NOT_OWN, reply_markup=kb.contact_keyboard())
        return
    phone = re.sub(r"\D", "", contact.phone_number)
    if phone.startswith("86") and len(phone) == 13:
        phone = phone[2:]
    await _remember_contact(message, state, app, person, phone=phone)


async def on_contact_text(message: Message, state: FSMContext, app: App, person: Person) -> None:
    text = (message.text or "").strip()
    if text == texts.ANONYMOUS:
        await _remember_contact(message, state, app, person, phone=None)
        return
    phone = _normalise_phone(text)
    if phone is None:
        await message.answer(texts.BAD_PHONE, reply_markup=kb.contact_keyboard())
        return
    await _remember_contact(message, state, app, person, phone=phone)


async def _remember_contact(message: Message, state: FSMContext, app: App, person: Person, *,
                            phone: str | None) -> None:
    """The choice is remembered on the resident, so next time nobody asks again."""
    resident = await person.resident()
    if phone:
        resident.phone, resident.prefers_anonymous = phone, False
    else:
        resident.prefers_anonymous = True
    await app.roster.save_resident(resident)
    draft = await state.get_data()
    draft.update(phone=phone, phone_masked=mask_phone(phone), anonymous=phone is None)
    await state.set_data(draft)
    await message.answer("好的,已记录。", reply_markup=kb.main_menu())
    await _advance(message, state, app, person, draft)


async def on_text_in_confirm(message: Message, state: FSMContext, app: App, person: Person) -> None:
    """More words while the card is shown: add them to the description and show the card again.

    A phone number on its own replaces the contact (the way to stop being anonymous)."""
    text = (message.text or "").strip()
    draft = await state.get_data()
    if not _meaningful(text):
        await _show_card(message, state, draft)
        return
    if _normalise_phone(text) is not None:
        await _remember_contact(message, state, app, person, phone=_normalise_phone(text))
        return
    draft["text"] = (draft.get("text", "") + "\n" + text)[:MAX_STORED_TEXT]
    await state.set_data(draft)
    await _show_card(message, state, draft)


async def on_draft_button(query: CallbackQuery, callback_data: DraftAction, state: FSMContext, app: App,
                          classifier: Any, person: Person) -> None:
    draft = await state.get_data()
    message = query.message
    if draft.get("draft") != callback_data.draft or not isinstance(message, Message):
        # A card from an earlier, finished or cancelled complaint, or forged data.
        await query.answer(texts.STALE_BUTTON, show_alert=True)
        return
    action = callback_data.action
    if action == "area" and await state.get_state() == Intake.location.state:
        area = callback_data.value
        if area not in texts.PUBLIC_AREAS:  # only the areas we offered; forged text never shows
            await query.answer(texts.STALE_BUTTON, show_alert=True)
            return
        location = {"building": None, "unit": None, "room": None, "area": area, "text": None}
        draft.update(location=location, location_label=area)
        await state.set_data(draft)
        await query.answer(f"位置:{area}")
        await message.edit_reply_markup(reply_markup=None)
        await _advance(message, state, app, person, draft)
    elif action == "skip" and await state.get_state() == Intake.location.state:
        draft["location_skipped"] = True
        await state.set_data(draft)
        await query.answer()
        await message.edit_reply_markup(reply_markup=None)
        await _advance(message, state, app, person, draft)
    elif action == "submit" and await state.get_state() == Intake.confirm.state:
        # Register first: if that fails the card keeps its buttons and the error handler answers
        # the press. A second tap waits for this one (per-user lock) and finds the draft gone.
        await _submit(message, state, app, person, draft)
        await query.answer("已提交")
        await message.edit_reply_markup(reply_markup=None)
    elif action == "category" and await state.get_state() == Intake.confirm.state:
        await state.set_state(Intake.category)
        await query.answer()
        await message.edit_text("请选择问题类别:", reply_markup=kb.categories_keyboard(
            draft["draft"], _categories(classifier)))
    elif action == "setcat" and await state.get_state() == Intake.category.state:
        if callback_data.value not in _categories(classifier):
            await query.answer(texts.STALE_BUTTON, show_alert=True)
            return
        draft.update(category=callback_data.value, confidence=1.0)
        await state.set_data(draft)
        await state.set_state(Intake.confirm)
        await query.answer("已修改类别")
        await message.edit_text(texts.confirm_card(draft, low_confidence=False),
                                reply_markup=kb.confirm_keyboard(draft["draft"]))
    elif action == "cancel" and await state.get_state() in (Intake.confirm.state, Intake.category.state):
        await state.clear()
        await query.answer()
        await message.edit_text(texts.CANCELLED)
    else:
        await query.answer(texts.STALE_BUTTON, show_alert=True)


async def _submit(message: Message, state: FSMContext, app: App, person: Person, draft: dict[str, Any]) -> None:
    resident = await person.resident()
    location = Location(**draft["location"]) if draft.get("location") else Location()
    anonymous = bool(draft.get("anonymous"))
    new = NewComplaint(
        text=draft["text"], category=draft["category"], urgency=draft["urgency"], channel=Channel.TELEGRAM,
        emotion=draft.get("emotion", "calm"), secondary=draft.get("secondary", []), location=location,
        contact=Contact(resident.name, draft.get("phone")), anonymous=anonymous,
        attachments=[Attachment(p["kind"], p["file_id"], p.get("caption")) for p in draft.get("photos", [])],
        resident_id=resident.id, intake_key=draft.get("draft"),
    )
    complaint = await app.complaints.submit(new, by=resident.as_actor())
    # The number is told before the draft is forgotten: if the bot dies in between, the card still
    # works, and pressing it again tells the same number (the submit is idempotent on the draft).
    await message.answer(texts.submitted(complaint, app.policy.tz, app.settings.hotline), reply_markup=kb.main_menu())
    await state.clear()
    if draft.get("last_group"):
        # Photos of the same album still on their way go to this complaint (see on_media).
        await state.set_data({"submitted_group": draft["last_group"], "submitted_number": complaint.number})


# ---- my complaints ------------------------------------------------------------------------------
async def on_my(message: Message, state: FSMContext, app: App, person: Person) -> None:
    await state.clear()
    resident = await person.resident()
    complaints = await app.complaints.list(resident_id=resident.id, limit=10)
    markup = kb.my_list_keyboard([c.number for c in complaints]) if complaints else None
    await message.answer(texts.my_list(complaints, app.policy.tz), reply_markup=markup)


async def on_complaint_button(query: CallbackQuery, callback_data: ComplaintAction, state: FSMContext,
                              app: App, person: Person) -> None:
    message = query.message
    if not isinstance(message, Message):  # too old for Telegram to show us
        await query.answer(texts.STALE_BUTTON, show_alert=True)
        return
    resident = await person.resident()
    try:
        complaint = await app.complaints.get(callback_data.number)
    except DomainError:
        complaint = None
    if complaint is None or complaint.resident_id != resident.id:
        # Someone else's complaint, a staff member's button or made-up data: nothing of theirs.
        await query.answer(texts.NOT_YOURS, show_alert=True)
        return
    action = callback_data.action
    actor = resident.as_actor()
    if action == "open":
        await query.answer()
        await message.answer(texts.details(complaint, app.policy.tz, complaint.public_history()),
                             reply_markup=kb.details_keyboard(complaint.number, is_open=complaint.is_open))
    elif action == "add" and complaint.is_open:
        await state.set_state(AddInfo.collecting)
        await state.set_data({"number": complaint.number, "since": app.clock().isoformat()})
        await query.answer()
        await message.answer(texts.ADD_INFO_START, reply_markup=kb.add_info_keyboard(complaint.number))
    elif action == "add_done":
        if (await state.get_data()).get("number") == complaint.number:
            await state.clear()
        await query.answer(texts.ADD_INFO_DONE)
        await message.edit_reply_markup(reply_markup=None)
    elif action == "withdraw" and complaint.is_open:
        await query.answer()
        await message.answer(texts.CONFIRM_WITHDRAW.format(number=complaint.number),
                             reply_markup=kb.confirm_withdraw_keyboard(complaint.number))
    elif action == "withdraw_yes":
        try:
            await app.complaints.act(complaint.number, "withdraw", by=actor)
        except DomainError as exc:
            await query.answer(str(exc)[:ALERT_LIMIT], show_alert=True)
            return
        await query.answer()
        await message.edit_text(texts.WITHDRAWN.format(number=complaint.number))
    else:
        await query.answer(f"投诉{complaint.status.label},无法进行此操作。" if complaint.status is not Status.SUBMITTED
                           else texts.STALE_BUTTON, show_alert=True)


async def on_add_info(message: Message, state: FSMContext, app: App, classifier: Any, person: Person) -> None:
    data = await state.get_data()
    number = data.get("number") or ""
    since = data.get("since")
    if since is None or app.clock() - datetime.fromisoformat(since) > ADD_INFO_IDLE:
        # The resident never pressed 完成 and has come back later: this is a new matter.
        await state.clear()
        if message.text:
            await on_text(message, state, app, classifier, person)
        else:
            await on_media(message, state, app, classifier, person)
        return
    resident = await person.resident()
    text = (message.text or message.caption or "").strip()[:MAX_STORED_TEXT] or None
    attachments = [Attachment(**_attachment(message))] if (message.photo or message.video) else None
    if text is not None and attachments is None and not _meaningful(text):
        await message.answer(texts.ADD_INFO_START, reply_markup=kb.add_info_keyboard(number))
        return
    try:
        await app.complaints.add_info(number, by=resident.as_actor(), text=text, attachments=attachments)
    except DomainError as exc:
        await state.clear()
        await message.answer(texts.q(str(exc)))
        return
    group = message.media_group_id
    await state.update_data(since=app.clock().isoformat(), last_group=group)
    if group and data.get("last_group") == group:
        return  # one answer per album
    await message.answer(texts.ADD_INFO_SAVED.format(number=number), reply_markup=kb.add_info_keyboard(number))


async def on_stale_button(query: CallbackQuery) -> None:
    """Anything else pressed: old keyboards, other roles' buttons, forged data."""
    await query.answer(texts.STALE_BUTTON, show_alert=True)
