package org.jtune.tokenizer;

import com.hubspot.jinjava.Jinjava;
import com.hubspot.jinjava.JinjavaConfig;
import com.hubspot.jinjava.interpret.RenderResult;
import com.hubspot.jinjava.interpret.TemplateError;
import com.hubspot.jinjava.lib.fn.ELFunctionDefinition;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.jtune.JTuneException;

/**
 * Renders a Hugging Face chat template (the Jinja source in tokenizer_config.json) into the prompt
 * string, matching {@code apply_chat_template(messages, tokenize=False, add_generation_prompt=...)}.
 * We use Jinjava, with Jinja2's whitespace rules as transformers configures them ({@code
 * trim_blocks=True, lstrip_blocks=True}, "-" markers, no kept trailing newline) applied to the
 * source beforehand by {@link JinjaWhitespace}, and bridge the Python-isms that HF templates use:
 * {@code raise_exception(msg)} becomes a {@link JTuneException}, {@code strftime_now(fmt)} is
 * provided, and the few Python string methods
 * Jinjava lacks are renamed to their Java equivalents before compiling (see {@link #PY_METHODS}).
 */
public final class ChatTemplate {

    /**
     * Python str methods used by HF templates, mapped to the Java String method Jinjava will find by
     * reflection. {@code strip()} and {@code replace(a, b)} need no mapping: java.lang.String has
     * them with the same meaning. Only zero-argument whitespace stripping is supported; Python's
     * {@code strip(chars)} has no Java counterpart and fails with Jinjava's "cannot find method".
     */
    private static final Map<String, String> PY_METHODS = Map.of(
            "lstrip", "stripLeading",
            "rstrip", "stripTrailing",
            "upper", "toUpperCase",
            "lower", "toLowerCase",
            "startswith", "startsWith",
            "endswith", "endsWith");

    private static final Pattern PY_CALL =
            Pattern.compile("\\.(lstrip|rstrip|upper|lower|startswith|endswith)\\(");

    /** Jinjava is thread-safe once configured; one instance serves every template. */
    private static final Jinjava JINJAVA = newJinjava();

    private final String source;
    private final String bosToken;
    private final String eosToken;

    private ChatTemplate(String source, String bosToken, String eosToken) {
        this.source = source;
        this.bosToken = bosToken;
        this.eosToken = eosToken;
    }

    /** Compiles nothing yet: Jinjava parses on render; bad syntax surfaces there with a clear error. */
    public static ChatTemplate of(String jinjaSource, String bosToken, String eosToken) {
        if (jinjaSource == null || jinjaSource.isBlank()) {
            throw new JTuneException("chat template is empty; pass the 'chat_template' string from"
                    + " tokenizer_config.json or a .jinja file");
        }
        return new ChatTemplate(prepare(jinjaSource),
                bosToken == null ? "" : bosToken, eosToken == null ? "" : eosToken);
    }

    /** Renders like HF apply_chat_template(messages, tokenize=False, add_generation_prompt=...). */
    public String render(List<ChatMessage> messages, boolean addGenerationPrompt) {
        List<Map<String, Object>> msgs = new ArrayList<>(messages.size());
        for (ChatMessage m : messages) {
            // Mutable maps, like Python dicts: templates may copy or extend them.
            Map<String, Object> d = new LinkedHashMap<>();
            d.put("role", m.role());
            d.put("content", m.content());
            msgs.add(d);
        }
        Map<String, Object> ctx = new HashMap<>();
        ctx.put("messages", msgs);
        ctx.put("add_generation_prompt", addGenerationPrompt);
        ctx.put("bos_token", bosToken);
        ctx.put("eos_token", eosToken);
        RenderResult result;
        try {
            result = JINJAVA.renderForResult(source, ctx);
        } catch (TemplateRaised e) {
            throw new JTuneException("chat template rejected the conversation: " + e.getMessage(), e);
        }
        for (TemplateError err : result.getErrors()) {
            TemplateRaised raised = findRaised(err.getException());
            if (raised != null) {
                throw new JTuneException(
                        "chat template rejected the conversation: " + raised.getMessage(), raised);
            }
        }
        for (TemplateError err : result.getErrors()) {
            if (err.getSeverity() == TemplateError.ErrorType.FATAL) {
                throw new JTuneException("chat template failed to render at line " + err.getLineno()
                        + ": " + err.getMessage()
                        + "; the template may use a Jinja/Python feature Jinjava lacks");
            }
        }
        return result.getOutput();
    }

    /** The template source as rendered (after the Python-method rewrite). */
    public String source() {
        return source;
    }

    /** Called from templates as {@code raise_exception('...')}. */
    public static Object raiseException(String message) {
        throw new TemplateRaised(message);
    }

    static String prepare(String src) {
        // Jinja2 normalizes newlines and (keep_trailing_newline=False, HF's setting) drops one
        // trailing newline of the source; Jinjava does neither.
        src = src.replace("\r\n", "\n").replace('\r', '\n');
        if (src.endsWith("\n")) {
            src = src.substring(0, src.length() - 1);
        }
        return JinjaWhitespace.apply(src, PY_METHOD_REWRITE);
    }

    /** Renames Python string methods inside one tag body (never in literal text). */
    private static final java.util.function.UnaryOperator<String> PY_METHOD_REWRITE = body -> {
        Matcher call = PY_CALL.matcher(body);
        StringBuilder out = new StringBuilder(body.length());
        while (call.find()) {
            call.appendReplacement(out, "." + PY_METHODS.get(call.group(1)) + "(");
        }
        call.appendTail(out);
        return out.toString();
    };

    private static TemplateRaised findRaised(Throwable t) {
        for (int depth = 0; t != null && depth < 20; depth++, t = t.getCause()) {
            if (t instanceof TemplateRaised r) {
                return r;
            }
        }
        return null;
    }

    private static Jinjava newJinjava() {
        // Whitespace control is already applied by JinjaWhitespace, so Jinjava must not add its
        // own (its trim/lstrip and "{{-" handling differ from Jinja2's in corner cases).
        Jinjava j = new Jinjava(JinjavaConfig.newBuilder()
                .withTrimBlocks(false)
                .withLstripBlocks(false)
                .build());
        j.getGlobalContext().registerFunction(new ELFunctionDefinition(
                "", "raise_exception", ChatTemplate.class, "raiseException", String.class));
        j.getGlobalContext().registerFunction(new ELFunctionDefinition(
                "", "strftime_now", ChatTemplate.class, "strftimeNow", String.class));
        return j;
    }

    /**
     * Called from templates as {@code strftime_now("%d %b %Y")} (Llama 3.1+ put today's date in
     * the system prompt). Supports the common Python directives; others are copied verbatim.
     */
    public static String strftimeNow(String format) {
        return strftime(format, java.time.LocalDateTime.now());
    }

    static String strftime(String format, java.time.LocalDateTime t) {
        StringBuilder out = new StringBuilder();
        for (int i = 0; i < format.length(); i++) {
            char c = format.charAt(i);
            if (c != '%' || i + 1 == format.length()) {
                out.append(c);
                continue;
            }
            char d = format.charAt(++i);
            String pattern = switch (d) {
                case 'd' -> "dd";
                case 'm' -> "MM";
                case 'Y' -> "yyyy";
                case 'y' -> "yy";
                case 'b' -> "MMM";
                case 'B' -> "MMMM";
                case 'a' -> "EEE";
                case 'A' -> "EEEE";
                case 'H' -> "HH";
                case 'M' -> "mm";
                case 'S' -> "ss";
                default -> null;
            };
            if (d == '%') {
                out.append('%');
            } else if (pattern == null) {
                out.append('%').append(d);
            } else {
                out.append(java.time.format.DateTimeFormatter
                        .ofPattern(pattern, java.util.Locale.ENGLISH).format(t));
            }
        }
        return out.toString();
    }

    /** Carries the template's own message out through Jinjava's error handling. */
    private static final class TemplateRaised extends RuntimeException {
        TemplateRaised(String message) {
            super(message);
        }
    }
}
