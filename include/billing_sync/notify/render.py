"""Renderers of a `Message`, one per medium: log text, HTML mail, Slack mrkdwn.

Every value is escaped for its medium, never treated as a template (names come from Huntress and
ConnectWise). The values arrive already scrubbed of secrets and cut (send.dispatch).
"""

from __future__ import annotations

import html

from .model import Message

MAX_SLACK_CHARS = 3500  # Slack truncates long webhook texts; keep the links in view


def render_text(m: Message) -> str:
    out = [m.subject, ""]
    out += [f"{k}: {v}" for k, v in m.facts]
    for heading, lines in m.sections:
        out += ["", f"{heading}:"] + [f"  - {x}" for x in lines]
    if m.links:
        out += [""] + [f"{k}: {v}" for k, v in m.links]
    return "\n".join(out)


def render_html(m: Message) -> str:
    e = html.escape
    colour = "#b42318" if m.severity == "failure" else "#175cd3"
    rows = "".join(
        f"<tr><th align='left' style='padding:2px 12px 2px 0'>{e(k)}</th>"
        f"<td style='padding:2px 0'>{e(v)}</td></tr>"
        for k, v in m.facts
    )
    parts = [f"<h2 style='color:{colour};font-size:18px'>{e(m.subject)}</h2>", f"<table>{rows}</table>"]
    for heading, lines in m.sections:
        items = "".join(f"<li>{e(x)}</li>" for x in lines)
        parts.append(f"<h3 style='font-size:15px'>{e(heading)}</h3><ul>{items}</ul>")
    if m.links:
        items = "".join(f"<li>{e(k)}: {_html_link(v)}</li>" for k, v in m.links)
        parts.append(f"<ul>{items}</ul>")
    return f"<div style='font-family:sans-serif;font-size:14px'>{''.join(parts)}</div>"


def _html_link(target: str) -> str:
    e = html.escape
    if target.startswith(("http://", "https://")):
        return f'<a href="{e(target)}">{e(target)}</a>'
    return f"<code>{e(target)}</code>"  # a file path: mail clients cannot open file:// links anyway


def render_slack(m: Message) -> str:
    def esc(s: str) -> str:
        # Slack's only escapes; unescaped, a name like "<!channel>" would ping everyone.
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    icon = ":rotating_light:" if m.severity == "failure" else ":clipboard:"
    out = [f"{icon} *{esc(m.subject)}*"] + [f"*{esc(k)}:* {esc(v)}" for k, v in m.facts]
    for heading, lines in m.sections:
        out += [f"*{esc(heading)}:*"] + [f"• {esc(x)}" for x in lines]
    links = [
        f"<{esc(v)}|{esc(k)}>" if v.startswith(("http://", "https://")) else f"{esc(k)}: `{esc(v)}`"
        for k, v in m.links
    ]
    body = "\n".join(out)
    tail = "\n".join(links)
    if len(body) + len(tail) > MAX_SLACK_CHARS:
        body = body[: max(0, MAX_SLACK_CHARS - len(tail) - 20)] + "\n… (cut; see the report)"
    return f"{body}\n{tail}" if tail else body
