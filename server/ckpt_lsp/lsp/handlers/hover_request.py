"""textDocument/hover: a finding's explanation, or a rule's summary on an ignore comment."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lsprotocol import types

from ckpt_lsp.lsp import hover
from ckpt_lsp.lsp.positions import LineIndex

if TYPE_CHECKING:
    from ckpt_lsp.lsp.server import CkptServer


async def hover_request(ls: CkptServer, params: types.HoverParams) -> types.Hover | None:
    session = ls.session
    result = await session.checks.current_result(params.text_document.uri)
    if result is None:
        return None
    index = LineIndex(result.text, ls.workspace.position_codec)
    pos = index.from_client(params.position)
    markdown = session.client.markdown
    kind = types.MarkupKind.Markdown if markdown else types.MarkupKind.PlainText
    finding = hover.finding_at(result.findings, pos)
    if finding is not None:
        i = result.findings.index(finding)
        return types.Hover(
            contents=types.MarkupContent(
                kind=kind, value=hover.finding_markdown(finding, markdown)
            ),
            range=session.publisher.diagnostic_objects([result.diagnostics[i]])[0].range,
        )
    code = hover.code_in_suppression(index.line_text(pos.row - 1), pos.column - 1)
    if code is not None:
        text = hover.rule_markdown(code, markdown)
        if text is not None:
            return types.Hover(contents=types.MarkupContent(kind=kind, value=text))
    return None
