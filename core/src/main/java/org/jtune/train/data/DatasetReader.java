package org.jtune.train.data;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.PushbackReader;
import java.io.Reader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.jtune.JTuneException;
import org.jtune.tokenizer.ChatMessage;

/**
 * Reads fine-tuning data files into {@link TrainingRecord}s. A file is either JSONL (one JSON object
 * per line, blank lines skipped) or a JSON array of objects; which one is decided by the first
 * non-blank character ('[' means array), not by the extension, because published data sets disagree
 * (Huatuo's {@code llama_data.json} is JSONL). The shape is detected per record, in this order:
 * {@code messages} (chat), {@code conversations} (ShareGPT), {@code instruction}+{@code output}
 * (Alpaca), {@code prompt}+{@code completion}, {@code context}+{@code continuation} (lm-eval
 * style, read as prompt/completion), {@code text}. Other keys (ids, labels) are ignored.
 *
 * <p>A malformed record is reported with the file, its line (for arrays also the element index)
 * and what is wrong. By default the first one stops reading, so a bad file fails before any
 * training step; with {@code skipMalformed} it is skipped and counted. Broken JSON syntax inside an
 * array cannot be skipped (the rest of the array cannot be found reliably) and always fails.
 */
public final class DatasetReader {
    /** How many skip messages a {@link Result} keeps; the count is always exact. */
    public static final int MAX_KEPT_MESSAGES = 5;

    // One line of JSONL must be exactly one value; the array reader streams, so it must not check.
    private static final ObjectMapper JSON = new ObjectMapper()
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);
    private static final ObjectMapper STREAMING = new ObjectMapper();

    private DatasetReader() {}

    /**
     * What was read: the records, where each came from ("file:line" or "file:line (element i)",
     * parallel to records, for later error messages), and the skipped count with the first few
     * reasons.
     */
    public record Result(Path file, List<TrainingRecord> records, List<String> origins,
                         int skipped, List<String> skippedMessages) {
        public Result {
            records = List.copyOf(records);
            origins = List.copyOf(origins);
            skippedMessages = List.copyOf(skippedMessages);
        }

        /** Records read plus records skipped. */
        public int total() {
            return records.size() + skipped;
        }
    }

    /** Thrown inside the reader for one bad record; turned into a JTuneException or a skip. */
    private static final class Malformed extends Exception {
        Malformed(String message) {
            super(message, null, false, false);
        }
    }

    public static Result read(Path file, boolean skipMalformed) {
        if (!Files.isRegularFile(file)) {
            throw new JTuneException("data file " + file + " does not exist or is not a file");
        }
        Collector c = new Collector(file, skipMalformed);
        try (Reader raw = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
            PushbackReader in = new PushbackReader(raw, 1);
            int first = firstNonBlank(in);
            if (first == '[') {
                readArray(in, c);
            } else {
                readLines(new BufferedReader(in), c);
            }
        } catch (IOException e) {
            throw new JTuneException("could not read data file " + file + ": " + e.getMessage(), e);
        }
        if (c.records.isEmpty()) {
            throw new JTuneException("data file " + file + " holds no usable records"
                    + (c.skipped > 0 ? " (" + c.skipped + " malformed, first: " + c.messages.getFirst() + ")" : "")
                    + "; expected JSONL or a JSON array of objects with text, prompt/completion,"
                    + " instruction/input/output, messages or conversations");
        }
        return new Result(file, c.records, c.origins, c.skipped, c.messages);
    }

    /** Peeks at the first non-whitespace character (skipping a UTF-8 BOM) and pushes it back. */
    private static int firstNonBlank(PushbackReader in) throws IOException {
        int ch;
        do {
            ch = in.read();
        } while (ch != -1 && (Character.isWhitespace(ch) || ch == '\uFEFF'));
        if (ch != -1) {
            in.unread(ch);
        }
        return ch;
    }

    private static final class Collector {
        final Path file;
        final boolean skipMalformed;
        final List<TrainingRecord> records = new ArrayList<>();
        final List<String> origins = new ArrayList<>();
        final List<String> messages = new ArrayList<>();
        int skipped;

        Collector(Path file, boolean skipMalformed) {
            this.file = file;
            this.skipMalformed = skipMalformed;
        }

        void accept(String where, JsonNode node) {
            try {
                records.add(parseRecord(node));
                origins.add(where);
            } catch (Malformed m) {
                malformed(where, m.getMessage());
            }
        }

        void malformed(String where, String what) {
            String message = where + ": " + what;
            if (!skipMalformed) {
                throw new JTuneException("malformed record at " + message
                        + "; fix the record, or skip malformed records (skipMalformed)");
            }
            skipped++;
            if (messages.size() < MAX_KEPT_MESSAGES) {
                messages.add(message);
            }
        }
    }

    private static void readLines(BufferedReader in, Collector c) throws IOException {
        String line;
        int lineNo = 0;
        while ((line = in.readLine()) != null) {
            lineNo++;
            if (line.isBlank()) {
                continue;
            }
            String where = c.file + ":" + lineNo;
            JsonNode node;
            try {
                node = JSON.readTree(line);
            } catch (JsonProcessingException e) {
                String hint = line.strip().equals("{")
                        ? " (is this pretty-printed JSON? JSONL needs one object per line)" : "";
                c.malformed(where, "invalid JSON: " + e.getOriginalMessage() + hint);
                continue;
            }
            c.accept(where, node);
        }
    }

    private static void readArray(Reader in, Collector c) throws IOException {
        JsonFactory factory = STREAMING.getFactory();
        try (JsonParser p = factory.createParser(in)) {
            if (p.nextToken() != JsonToken.START_ARRAY) {
                throw new JTuneException(c.file + ": expected a JSON array of objects");
            }
            int index = 0;
            JsonToken t;
            while ((t = p.nextToken()) != JsonToken.END_ARRAY) {
                if (t == null) {
                    throw new JTuneException(c.file + ": the JSON array is not closed; is the file truncated?");
                }
                String where = c.file + ":" + p.currentTokenLocation().getLineNr() + " (element " + index + ")";
                JsonNode node = p.readValueAsTree();
                c.accept(where, node);
                index++;
            }
            if (p.nextToken() != null) {
                throw new JTuneException(c.file + ":" + p.currentTokenLocation().getLineNr()
                        + ": unexpected content after the JSON array");
            }
        } catch (JsonProcessingException e) {
            throw new JTuneException(c.file + ":" + (e.getLocation() == null ? "?" : e.getLocation().getLineNr())
                    + ": invalid JSON in the array: " + e.getOriginalMessage()
                    + "; broken syntax inside an array cannot be skipped, fix the file", e);
        }
    }

    /** Detects the shape of one JSON value; the order is documented on the class. */
    static TrainingRecord parseRecord(JsonNode node) throws Malformed {
        if (node == null || !node.isObject()) {
            throw new Malformed("expected a JSON object but found " + kind(node));
        }
        if (node.has("messages")) {
            return parseMessages(node.get("messages"));
        }
        if (node.has("conversations")) {
            return parseShareGpt(node.get("conversations"));
        }
        if (node.has("instruction") && node.has("output")) {
            JsonNode input = node.get("input");
            String in = input == null || input.isNull() ? "" : string(node, "input");
            return new TrainingRecord.Instruction(string(node, "instruction"), in, string(node, "output"));
        }
        if (node.has("prompt") && node.has("completion")) {
            return new TrainingRecord.PromptCompletion(string(node, "prompt"), string(node, "completion"));
        }
        if (node.has("context") && node.has("continuation")) {
            return new TrainingRecord.PromptCompletion(string(node, "context"), string(node, "continuation"));
        }
        if (node.has("text")) {
            String text = string(node, "text");
            if (text.isEmpty()) {
                throw new Malformed("\"text\" is empty");
            }
            return new TrainingRecord.Text(text);
        }
        List<String> keys = new ArrayList<>();
        node.fieldNames().forEachRemaining(keys::add);
        throw new Malformed("no known shape for keys " + keys + "; expected text, prompt+completion,"
                + " instruction+output (+input), messages or conversations");
    }

    private static TrainingRecord parseMessages(JsonNode messages) throws Malformed {
        if (messages == null || !messages.isArray()) {
            throw new Malformed("\"messages\" must be an array but is " + kind(messages));
        }
        List<ChatMessage> out = new ArrayList<>();
        int i = 0;
        for (JsonNode m : messages) {
            if (!m.isObject()) {
                throw new Malformed("messages[" + i + "] must be an object but is " + kind(m));
            }
            out.add(new ChatMessage(string(m, "role", "messages[" + i + "]."), string(m, "content", "messages[" + i + "].")));
            i++;
        }
        return chat(out, "messages");
    }

    private static final Map<String, String> SHAREGPT_ROLES = Map.of(
            "human", "user", "user", "user", "gpt", "assistant", "assistant", "assistant", "system", "system");

    private static TrainingRecord parseShareGpt(JsonNode conversations) throws Malformed {
        if (conversations == null || !conversations.isArray()) {
            throw new Malformed("\"conversations\" must be an array but is " + kind(conversations));
        }
        List<ChatMessage> out = new ArrayList<>();
        int i = 0;
        for (JsonNode m : conversations) {
            String at = "conversations[" + i + "].";
            if (!m.isObject()) {
                throw new Malformed("conversations[" + i + "] must be an object but is " + kind(m));
            }
            String from = string(m, "from", at);
            String role = SHAREGPT_ROLES.get(from);
            if (role == null) {
                throw new Malformed(at + "from is \"" + from + "\"; expected human, gpt or system");
            }
            out.add(new ChatMessage(role, string(m, "value", at)));
            i++;
        }
        return chat(out, "conversations");
    }

    private static TrainingRecord chat(List<ChatMessage> messages, String key) throws Malformed {
        if (messages.isEmpty()) {
            throw new Malformed("\"" + key + "\" is empty");
        }
        if (messages.stream().noneMatch(m -> m.role().equals("assistant"))) {
            throw new Malformed("\"" + key + "\" has no assistant turn, so nothing would carry the loss");
        }
        return new TrainingRecord.Chat(messages);
    }

    private static String string(JsonNode node, String field) throws Malformed {
        return string(node, field, "");
    }

    private static String string(JsonNode node, String field, String prefix) throws Malformed {
        JsonNode v = node.get(field);
        if (v == null) {
            throw new Malformed(prefix + "\"" + field + "\" is missing");
        }
        if (!v.isTextual()) {
            throw new Malformed(prefix + "\"" + field + "\" must be a string but is " + kind(v));
        }
        return v.textValue();
    }

    private static String kind(JsonNode v) {
        if (v == null || v.isMissingNode()) {
            return "missing";
        }
        return switch (v.getNodeType()) {
            case ARRAY -> "an array";
            case OBJECT -> "an object";
            case STRING -> "a string";
            case NUMBER -> "a number";
            case BOOLEAN -> "a boolean";
            case NULL -> "null";
            default -> v.getNodeType().toString().toLowerCase();
        };
    }
}
