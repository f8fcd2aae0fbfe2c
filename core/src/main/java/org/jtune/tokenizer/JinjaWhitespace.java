package org.jtune.tokenizer;

import java.util.function.UnaryOperator;

/**
 * Applies Jinja2's whitespace control to a template's source so that the engine that renders it
 * (Jinjava) only has to evaluate tags. Jinjava's own trim_blocks/lstrip_blocks and "{{-" handling
 * do not match Jinja2's (it leaves the indentation before "{{-" and the newline after "{#- #}"),
 * and chat templates depend on every byte. The rules, from jinja2's lexer with transformers'
 * settings (trim_blocks=True, lstrip_blocks=True):
 * <ul>
 *   <li>"{{-", "{%-", "{#-" strip all whitespace before the tag; "-}}", "-%}", "-#}" strip all
 *       whitespace after it;</li>
 *   <li>lstrip_blocks: spaces and tabs between the start of a line and a block or comment tag
 *       are removed, unless the tag opens with "+";</li>
 *   <li>trim_blocks: one newline right after a block or comment tag is removed, unless it closes
 *       with "+";</li>
 *   <li>comments are dropped; {% raw %} content is copied untouched.</li>
 * </ul>
 * Tag bodies are passed through {@code rewriteBody} (used for Python method renames).
 */
final class JinjaWhitespace {
    private JinjaWhitespace() {}

    static String apply(String src, UnaryOperator<String> rewriteBody) {
        StringBuilder out = new StringBuilder(src.length());
        int pos = 0;
        char pendingAfter = 0;   // how the previous tag treats the text after it: '-', 't', or 0
        while (pos <= src.length()) {
            int open = nextTagStart(src, pos);
            int textEnd = open < 0 ? src.length() : open;
            int textStart = pos;
            if (pendingAfter == '-') {
                while (textStart < textEnd && Character.isWhitespace(src.charAt(textStart))) {
                    textStart++;
                }
            } else if (pendingAfter == 't' && textStart < textEnd && src.charAt(textStart) == '\n') {
                textStart++;
            }
            if (open < 0) {
                out.append(src, textStart, textEnd);
                break;
            }
            char kind = src.charAt(open + 1);     // '{', '%' or '#'
            int bodyStart = open + 2;
            char leftMod = bodyStart < src.length() ? src.charAt(bodyStart) : 0;
            if (leftMod == '-' || leftMod == '+') {
                bodyStart++;
            } else {
                leftMod = 0;
            }
            int close = findClose(src, bodyStart, kind);   // index of the closing "}}", "%}", "#}"
            if (close < 0) {
                throw new org.jtune.JTuneException("chat template has an unclosed '{" + kind
                        + "' at offset " + open + "; is the template truncated?");
            }
            int bodyEnd = close;
            char rightMod = 0;
            if (bodyEnd > bodyStart && (src.charAt(bodyEnd - 1) == '-' || src.charAt(bodyEnd - 1) == '+')) {
                rightMod = src.charAt(bodyEnd - 1);
                bodyEnd--;
            }
            boolean blockLike = kind == '%' || kind == '#';
            int keepTo = textEnd;
            if (leftMod == '-') {
                while (keepTo > textStart && Character.isWhitespace(src.charAt(keepTo - 1))) {
                    keepTo--;
                }
            } else if (leftMod == 0 && blockLike) {
                int lineStart = keepTo;
                while (lineStart > textStart && (src.charAt(lineStart - 1) == ' '
                        || src.charAt(lineStart - 1) == '\t')) {
                    lineStart--;
                }
                // Only when the tag is the first thing on its line (jinja2's line_starting).
                if (lineStart == 0 || src.charAt(lineStart - 1) == '\n') {
                    keepTo = lineStart;
                }
            }
            out.append(src, textStart, Math.max(textStart, keepTo));
            String body = src.substring(bodyStart, bodyEnd);
            int next = close + 2;
            if (kind == '%' && body.strip().equals("raw")) {
                int endRaw = findEndRaw(src, next);
                if (endRaw < 0) {
                    throw new org.jtune.JTuneException("chat template has {% raw %} without"
                            + " {% endraw %}");
                }
                int endRawClose = findClose(src, endRaw + 2, '%');
                out.append("{% raw %}").append(src, next, endRaw).append("{% endraw %}");
                next = endRawClose + 2;
                rightMod = src.charAt(endRawClose - 1) == '-' ? '-' : 0;
            } else if (kind == '{') {
                out.append("{{").append(rewriteBody.apply(body)).append("}}");
            } else if (kind == '%') {
                out.append("{%").append(rewriteBody.apply(body)).append("%}");
            }   // comments vanish
            pendingAfter = rightMod == '-' ? '-' : (rightMod == 0 && blockLike ? 't' : 0);
            pos = next;
        }
        return out.toString();
    }

    private static int nextTagStart(String src, int from) {
        for (int i = src.indexOf('{', from); i >= 0 && i + 1 < src.length(); i = src.indexOf('{', i + 1)) {
            char c = src.charAt(i + 1);
            if (c == '{' || c == '%' || c == '#') {
                return i;
            }
        }
        return -1;
    }

    /** Finds the tag's closing delimiter, skipping over string literals inside the tag. */
    private static int findClose(String src, int from, char kind) {
        if (kind == '#') {
            return src.indexOf("#}", from);
        }
        char closer = kind == '{' ? '}' : '%';
        char quote = 0;
        for (int i = from; i + 1 < src.length(); i++) {
            char c = src.charAt(i);
            if (quote != 0) {
                if (c == '\\') {
                    i++;
                } else if (c == quote) {
                    quote = 0;
                }
            } else if (c == '\'' || c == '"') {
                quote = c;
            } else if (c == closer && src.charAt(i + 1) == '}') {
                return i;
            }
        }
        return -1;
    }

    private static int findEndRaw(String src, int from) {
        java.util.regex.Matcher m = java.util.regex.Pattern
                .compile("\\{%[-+]?\\s*endraw\\s*[-+]?%\\}").matcher(src);
        return m.find(from) ? m.start() : -1;
    }
}
