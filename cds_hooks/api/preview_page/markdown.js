// A small, safe Markdown renderer for card detail, so the page needs no library and no network.
// All text is HTML-escaped first; only the subset cards/*.yaml uses is recognised: paragraphs, "-" and "1." lists
// (nested by indentation), **bold**, *italics*, `code`, backslash escapes and [links](https://...).
"use strict";

const LIST_ITEM = /^(\s*)([-*+]|\d+[.)])\s+(.*)$/;
// A backslash escape or a code span, whichever comes first: inside code, backslashes are literal.
const ESCAPE_OR_CODE = /\\([\\`*_{}[\]<>()#+\-.!|~])|`([^`]+)`/g;
const HELD = /\u0000(\d+)\u0000/g;

function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function renderInline(text) {
  // Finished HTML is held aside behind a placeholder so later patterns cannot match inside it.
  const held = [];
  const hold = (html) => `\u0000${held.push(html) - 1}\u0000`;
  let html = text.replace(ESCAPE_OR_CODE, (_, escaped, code) =>
    hold(escaped !== undefined ? escapeHtml(escaped) : `<code>${escapeHtml(code)}</code>`));
  html = escapeHtml(html);
  html = html.replace(/\[([^\]]+)\]\((https?:\/\/[^\s)]+)\)/g, (_, label, url) =>
    `<a href="${hold(url)}" target="_blank" rel="noopener noreferrer">${label}</a>`);
  html = html.replace(/\*\*(?=\S)([\s\S]*?\S)\*\*/g, "<strong>$1</strong>");
  html = html.replace(/(^|[^\w*])\*(?=\S)([^*]*?\S)\*(?![\w*])/g, "$1<em>$2</em>");
  html = html.replace(/(^|\W)_(?=\S)([^_]*?\S)_(?!\w)/g, "$1<em>$2</em>");
  const restore = (s) => s.replace(HELD, (_, index) => restore(held[Number(index)]));
  return restore(html);
}

function renderMarkdown(source) {
  const out = [];
  const lists = []; // open lists, innermost last: {indent, tag}
  let paragraph = [];
  let item = null; // lines of the list item being read

  const flushText = () => {
    if (item !== null) out.push(renderInline(item.join(" ")));
    if (paragraph.length) out.push(`<p>${renderInline(paragraph.join(" "))}</p>`);
    item = null;
    paragraph = [];
  };
  const closeListsDeeperThan = (indent) => {
    while (lists.length && lists[lists.length - 1].indent > indent) out.push(`</li></${lists.pop().tag}>`);
  };

  for (const line of String(source || "").replace(/\r\n?/g, "\n").split("\n")) {
    if (!line.trim()) {
      flushText(); // a blank line ends a paragraph; a list stays open until text at a lower indent
      continue;
    }
    const marker = line.match(LIST_ITEM);
    const indent = line.length - line.trimStart().length;
    if (marker) {
      flushText();
      const tag = /\d/.test(marker[2]) ? "ol" : "ul";
      closeListsDeeperThan(indent);
      const innermost = lists[lists.length - 1];
      if (innermost && innermost.indent === indent && innermost.tag === tag) {
        out.push("</li><li>");
      } else {
        if (innermost && innermost.indent === indent) out.push(`</li></${lists.pop().tag}>`);
        out.push(`<${tag}><li>`);
        lists.push({ indent, tag });
      }
      item = [marker[3].trim()];
    } else if (lists.length && (item !== null || indent > lists[lists.length - 1].indent)) {
      // An indented line, or one straight after an item, continues that item.
      (item = item || []).push(line.trim());
    } else {
      closeListsDeeperThan(-1);
      paragraph.push(line.trim());
    }
  }
  flushText();
  closeListsDeeperThan(-1);
  return out.join("");
}
