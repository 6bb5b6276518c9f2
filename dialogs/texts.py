"""What the bot says to residents: short, polite Chinese in the spirit of the procedures.

Every function returns HTML; anything a person typed goes through ``html.quote`` here, so a
handler cannot forget it.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from html import escape

from complaints.model import Complaint, ComplaintEvent, Status, Urgency
from complaints.views import category_label, local_text

MENU_COMPLAIN = "📝 我要投诉"
MENU_MY = "📋 我的投诉"
MENU_EMERGENCY = "🚨 紧急求助"
MENU_CONTACT = "☎️ 联系客服"
MENU_HELP = "❓ 帮助"
SHARE_PHONE = "📱 分享手机号"
ANONYMOUS = "🙈 匿名投诉"
CANCEL = "取消"

MAX_TEXT = 2000  # longer descriptions are kept whole but shown shortened


def q(text: str | None) -> str:
    return escape(text or "", quote=False)


def short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def welcome(name: str | None) -> str:
    who = f"{q(name)}," if name else ""
    return (f"您好{who}欢迎使用物业服务中心投诉与报修助手。\n\n"
            "直接发送文字(可附照片)描述您遇到的问题,我们会登记并给您一个投诉编号和处理时限。\n"
            "也可以使用下方菜单:我要投诉、我的投诉、紧急求助、联系客服、帮助。")


HELP = ("<b>使用帮助</b>\n"
        "• 直接发送文字描述问题即可投诉,可附最多 5 张照片或视频。\n"
        "• 我们会询问位置和联系方式,确认后生成投诉编号。\n"
        "• /my 查看您的投诉进度,可补充信息或撤销。\n"
        "• 紧急情况(困梯、漏水、停水停电、火情、燃气味)请点「紧急求助」,并拨打 24 小时服务热线。\n"
        "• /cancel 取消正在填写的投诉。\n"
        "• /mydata 导出我们保存的您的个人信息,/forget 删除您的个人信息。")

ASK_TEXT = "请用文字描述您遇到的问题(发生了什么、在哪里),也可以附上照片。"
ASK_TEXT_FOR_PHOTOS = "照片已收到。请再用一句话描述一下问题,以便我们尽快安排处理。"
EMPTY_TEXT = "抱歉,没有看懂您的描述。请用文字简单说明遇到的问题,例如:“3栋2单元楼道灯坏了”。"
UNSUPPORTED = "抱歉,目前只能处理文字和照片。请用文字描述您的问题,或使用下方菜单。"
UNSUPPORTED_STICKER = "收到您的表情。如需投诉或报修,请用文字描述遇到的问题。"
UNSUPPORTED_VOICE = "抱歉,暂时听不了语音。请用文字描述您的问题,我们马上登记。"
UNSUPPORTED_FILE = "抱歉,暂不接收文件。图片请直接以照片形式发送,问题请用文字描述。"
UNSUPPORTED_LOCATION = "已收到定位。请先用文字描述遇到的问题,我们会再询问具体位置。"
UNSUPPORTED_CONTACT = "已收到名片。如需投诉,请先用文字描述问题;联系方式我们会在登记时询问。"
GREETING = "您好!请直接用文字描述您遇到的问题(可附照片),我们会马上登记处理。"
YOU_ARE_WELCOME = "不客气!如有其他问题,随时直接发送文字描述即可。"
# What the dialog is waiting for, added to an answer to input it cannot use.
HINT_TEXT = "请用一句话描述问题。"
HINT_LOCATION = "请告诉我们问题发生的位置(楼栋单元房号,或点选公共区域)。"
HINT_CONTACT = "请点「📱 分享手机号」、输入手机号,或选择「🙈 匿名投诉」。"
HINT_CONFIRM = "请点投诉卡片上的「✅ 提交」或「❌ 取消」。"
HINT_CATEGORY = "请在上方选择问题类别。"
HINT_ADD_INFO = "请发送要补充的文字或照片,完毕点「完成」。"
UNKNOWN_COMMAND = "抱歉,没有这个命令。可用命令:/start 主菜单,/my 我的投诉,/help 帮助,/cancel 取消。"
TOO_FAST = "您发送得太快了,请稍等十秒再继续。在此之后的几条消息未能处理,如有需要请稍后重新发送。"
STALE_BUTTON = "这个按钮已失效,请重新操作。"
NOT_YOURS = "抱歉,您无权查看或操作这条投诉。"
SYSTEM_BUSY = "抱歉,系统繁忙,请稍后再试。您已提交的信息不会丢失。"
CANCELLED = "已取消本次填写。如需投诉,随时直接发送文字描述即可。"
NOTHING_TO_CANCEL = "当前没有正在填写的内容。"
TOO_MANY_PHOTOS = "最多可附 5 张照片或视频,多余的未保存。"
PHOTO_ADDED = "已收到照片({n}/5)。"

ASK_LOCATION = ("请告诉我们问题发生的位置:\n"
                "• 直接输入楼栋、单元、房号,例如 <code>5栋3单元801</code>;\n"
                "• 或点选下方的公共区域。")
ASK_LOCATION_EMERGENCY = ("🚨 紧急情况,请立即告诉我们位置(楼栋单元房号或点选公共区域),我们马上派人处理。\n"
                          "如有人员被困或受伤,请同时拨打 24 小时热线 {hotline}。")
LOCATION_NOT_UNDERSTOOD = "没能识别位置,已按您的原话记录:{text}"
ASK_CONTACT = ("请留下联系方式,方便处理人员与您联系:\n"
               "• 点「📱 分享手机号」,或直接输入手机号;\n"
               "• 也可以选择「🙈 匿名投诉」(匿名投诉无法回访告知结果)。")
BAD_PHONE = "这个号码好像不对,请输入 11 位手机号或带区号的座机号,或点「匿名投诉」。"
CONTACT_NOT_OWN = "为保护个人信息,请分享您本人的手机号,或直接输入号码。"

PUBLIC_AREAS = ("南门", "北门", "地下车库", "中心花园", "小区道路", "其他公共区域")

CONTACT_DESK = ("☎️ 物业服务中心\n24 小时服务热线:{hotline}\n"
                "工作时间(周一至周五 9:00–18:00)可到服务中心前台面谈。\n"
                "也可以直接在这里发送文字描述问题,我们会登记并尽快处理。")

# In the words of the procedures for 情绪激动 residents: calm first, then the supervisor takes it on.
EMPATHY = ("您先别着急,我们理解您的心情,非常抱歉给您带来这样的困扰。"
           "登记后我们会立即上报客服主任,尽快安排主任与您沟通,共同设法妥善处理。")

EMERGENCY_START = ("🚨 紧急求助\n请直接描述紧急情况和位置,我们会立即派人处理。\n"
                   "如有人员被困、受伤或火情,请立即拨打热线 {hotline}(必要时拨打 119/110/120)。")


def confirm_card(draft: dict, *, low_confidence: bool) -> str:
    location = draft.get("location_label") or "未提供"
    contact = "匿名(如需留电话,直接发送手机号)" if draft.get("anonymous") else q(draft.get("phone_masked") or "未提供")
    urgency = Urgency(draft.get("urgency", "general")).label
    photos = len(draft.get("photos", []))
    lines = ["<b>请确认您的投诉</b>",
             f"类别:{q(category_label(draft.get('category', 'other')))}",
             f"紧急程度:{urgency}",
             f"位置:{q(location)}",
             f"联系方式:{contact}",
             f"内容:{q(short(draft.get('text', '')))}"]
    if photos:
        lines.append(f"照片:{photos} 张")
    if low_confidence:
        lines.append("\n我们不太确定问题类别,请确认,或点「修改类别」选择。")
    return "\n".join(lines)


def submitted(c: Complaint, tz: tzinfo, hotline: str) -> str:
    lines = [f"✅ 已登记,投诉编号:<b>{c.number}</b>"]
    if c.urgency is Urgency.EMERGENCY:
        lines.append(f"这是紧急情况,我们已通知值班人员立即赶往现场。如有危险请先确保安全,并拨打 24 小时热线 {q(hotline)}。")
    if c.is_angry:
        lines.append("客服主任已收到通知,会尽快与您沟通。")
    lines.append(f"我们将在 {local_text(c.accept_by, tz)} 前联系您,预计 {local_text(c.resolve_by, tz)} 前处理完毕。")
    if c.anonymous:
        lines.append("您选择了匿名投诉,处理结果可在「我的投诉」中查看。")
    else:
        lines.append("接下来:工作人员接单后会与您联系并处理,进展会在这里通知您;完成后请您评价。"
                     "也可随时在「我的投诉」中查看或补充。")
    return "\n".join(lines)


def my_list(complaints: list[Complaint], tz: tzinfo) -> str:
    if not complaints:
        return "您还没有投诉记录。直接发送文字描述问题即可投诉。"
    lines = ["<b>我的投诉</b>(最近 10 条)"]
    for c in complaints:
        lines.append(f"{c.number} · {c.status.label} · {q(category_label(c.category))} · "
                     f"{local_text(c.created_at, tz)}")
    lines.append("点下方编号查看详情。")
    return "\n".join(lines)


def details(c: Complaint, tz: tzinfo, events: list[ComplaintEvent]) -> str:
    lines = [f"<b>投诉 {c.number}</b>",
             f"状态:{c.status.label}",
             f"类别:{q(category_label(c.category))} · {Urgency(c.urgency).label}",
             f"位置:{q(c.location.describe())}",
             f"内容:{q(short(c.text))}",
             f"登记时间:{local_text(c.created_at, tz)}"]
    if c.is_open:
        lines.append(f"预计完成:{local_text(c.resolve_by, tz)}")
    if c.status is Status.EXTERNAL and c.external_referral:
        lines.append(f"建议联系:{q(c.external_referral)}")
    if c.resolution and c.status in (Status.RESOLVED, Status.CLOSED):
        lines.append(f"处理结果:{q(short(c.resolution))}")
    lines.append("\n<b>处理进度</b>")
    if len(events) > MAX_TIMELINE:
        # A message holds 4096 characters: the first step and the latest ones are what matter.
        lines.append(f"• {_when(events[0].at, tz)} {events[0].label}")
        lines.append(f"…(省略 {len(events) - MAX_TIMELINE} 条记录)")
        events = events[-(MAX_TIMELINE - 1):]
    for e in events:
        note = f":{q(short(e.note, 80))}" if e.note and e.kind.value in _PUBLIC_NOTES else ""
        lines.append(f"• {_when(e.at, tz)} {e.label}{note}")
    return "\n".join(lines)


MAX_TIMELINE = 20

# Notes residents may read in the timeline: their own words, delays' reasons, results, referrals.
_PUBLIC_NOTES = {"info_added", "delayed", "resolved", "external", "withdrawn", "follow_up"}


def _when(at: datetime, tz: tzinfo) -> str:
    local = at.astimezone(tz)
    return f"{local.month}月{local.day}日 {local:%H:%M}"


ADD_INFO_START = "请发送要补充的文字或照片,发送完毕点「完成」。"
ADD_INFO_DONE = "补充信息已记录,处理人员会看到。"
ADD_INFO_SAVED = "已补充到投诉 {number}。还可以继续发送,或点「完成」。"
CONFIRM_WITHDRAW = "确定要撤销投诉 {number} 吗?撤销后将不再处理。"
WITHDRAWN = "投诉 {number} 已撤销。如问题仍然存在,欢迎随时重新投诉。"
