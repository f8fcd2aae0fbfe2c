package org.jtune.tokenizer;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalInt;
import org.jtune.JTuneException;

/**
 * Text to token ids and back for a Hugging Face checkpoint. The BPE/Unigram work is done by the HF
 * tokenizers library (Rust, through DJL); this class adds what transformers' {@code AutoTokenizer}
 * reads from the side files: bos/eos tokens, add_bos_token/add_eos_token, and the chat template
 * from tokenizer_config.json (overridden by special_tokens_map.json, as transformers does). It owns
 * a native handle: close it, or keep one per model for the life of the process.
 */
public final class Tokenizer implements AutoCloseable {

    private static final ObjectMapper JSON = new ObjectMapper();

    static {
        // DJL pings a usage tracker from tokenizer construction when it thinks it runs on EC2; a
        // local fine-tuning tool has no business phoning home. Respect an explicit user choice.
        if (System.getProperty("OPT_OUT_TRACKING") == null) {
            System.setProperty("OPT_OUT_TRACKING", "true");
        }
    }

    private final HuggingFaceTokenizer hf;
    private final String origin;                  // file or directory, for error messages
    private final Map<String, Integer> tokenIds;  // vocab + added tokens, exact token strings
    private final int vocabSize;
    private final String bosToken;                // null when the model has none
    private final String eosToken;
    private final Integer bosId;
    private final Integer eosId;
    private final Boolean addBos;                 // null: leave it to tokenizer.json's post-processor
    private final Boolean addEos;
    private final ChatTemplate chatTemplate;      // null when the model ships none

    private Tokenizer(HuggingFaceTokenizer hf, String origin, JsonNode tokenizerJson,
            Config config) {
        this.hf = hf;
        this.origin = origin;
        this.tokenIds = readTokenIds(tokenizerJson);
        int maxId = -1;
        for (int id : tokenIds.values()) {
            maxId = Math.max(maxId, id);
        }
        // Ids are dense in every HF vocab we know; max+1 also covers a hole left by a removed token.
        this.vocabSize = Math.max(maxId + 1, tokenIds.size());
        this.bosToken = config.bosToken;
        this.eosToken = config.eosToken;
        this.bosId = bosToken == null ? null : tokenIds.get(bosToken);
        this.eosId = eosToken == null ? null : tokenIds.get(eosToken);
        this.addBos = config.addBos;
        this.addEos = config.addEos;
        this.chatTemplate = config.chatTemplate == null
                ? null : ChatTemplate.of(config.chatTemplate, bosToken, eosToken);
    }

    /**
     * Loads a model directory: tokenizer.json (or, for GPT-2/OPT-style checkpoints, vocab.json +
     * merges.txt), plus tokenizer_config.json and special_tokens_map.json when present.
     */
    public static Tokenizer load(Path modelDir) {
        if (!Files.isDirectory(modelDir)) {
            throw new JTuneException("model directory " + modelDir + " does not exist or is not a"
                    + " directory; pass the folder that holds config.json and tokenizer.json");
        }
        Path tokenizerJson = modelDir.resolve("tokenizer.json");
        Path configJson = modelDir.resolve("tokenizer_config.json");
        Path specialMap = modelDir.resolve("special_tokens_map.json");
        Path vocabJson = modelDir.resolve("vocab.json");
        Path merges = modelDir.resolve("merges.txt");
        Config config = Config.read(Files.isRegularFile(configJson) ? configJson : null,
                Files.isRegularFile(specialMap) ? specialMap : null);
        if (Files.isRegularFile(tokenizerJson)) {
            return create(readText(tokenizerJson), tokenizerJson.toString(), config);
        }
        if (Files.isRegularFile(vocabJson) && Files.isRegularFile(merges)) {
            String json = ByteLevelBpe.tokenizerJson(vocabJson, merges,
                    Files.isRegularFile(configJson) ? readJson(configJson) : null);
            return create(json, modelDir.toString(), config);
        }
        if (Files.isRegularFile(modelDir.resolve("tokenizer.model"))) {
            throw new JTuneException("model directory " + modelDir + " has only a SentencePiece"
                    + " tokenizer.model, which jtune cannot read; provide tokenizer.json (save it"
                    + " with transformers: AutoTokenizer.from_pretrained(dir).save_pretrained(dir))");
        }
        throw new JTuneException("model directory " + modelDir + " has no tokenizer files (looked"
                + " for tokenizer.json, or vocab.json + merges.txt); a model without a tokenizer"
                + " must be driven with token ids");
    }

    /** Loads a tokenizer.json and, optionally, the tokenizer_config.json that goes with it. */
    public static Tokenizer fromFiles(Path tokenizerJson, Path tokenizerConfigJsonOrNull) {
        if (!Files.isRegularFile(tokenizerJson)) {
            throw new JTuneException("tokenizer file " + tokenizerJson + " does not exist; pass the"
                    + " path of a Hugging Face tokenizer.json");
        }
        if (tokenizerConfigJsonOrNull != null && !Files.isRegularFile(tokenizerConfigJsonOrNull)) {
            throw new JTuneException("tokenizer config " + tokenizerConfigJsonOrNull + " does not"
                    + " exist; pass null to load tokenizer.json alone");
        }
        Config config = Config.read(tokenizerConfigJsonOrNull, null);
        return create(readText(tokenizerJson), tokenizerJson.toString(), config);
    }

    private static Tokenizer create(String json, String origin, Config config) {
        JsonNode tree;
        try {
            tree = JSON.readTree(json);
        } catch (IOException e) {
            throw new JTuneException("tokenizer " + origin + " is not valid JSON (" + e.getMessage()
                    + "); is the file truncated or a Git LFS pointer?", e);
        }
        if (tree == null || !tree.isObject() || !tree.path("model").isObject()) {
            throw new JTuneException("tokenizer " + origin + " has no \"model\" object; it is not a"
                    + " Hugging Face tokenizer.json");
        }
        HuggingFaceTokenizer hf;
        try {
            // No truncation or padding: callers decide how long sequences are.
            Map<String, String> options = Map.of("truncation", "false", "padding", "false");
            hf = HuggingFaceTokenizer.newInstance(
                    new ByteArrayInputStream(json.getBytes(StandardCharsets.UTF_8)), options);
        } catch (IOException | RuntimeException e) {
            throw new JTuneException("the tokenizers library could not load " + origin + ": "
                    + e.getMessage() + "; is it a tokenizer.json from a recent transformers?", e);
        }
        try {
            return new Tokenizer(hf, origin, tree, config);
        } catch (RuntimeException e) {
            hf.close();
            throw e;
        }
    }

    /** Encodes text; with addSpecialTokens the model's BOS/EOS are added as transformers does. */
    public int[] encode(String text, boolean addSpecialTokens) {
        boolean manual = addSpecialTokens && (addBos != null || addEos != null);
        long[] ids = hf.encode(text, addSpecialTokens && !manual, false).getIds();
        boolean bos = manual && Boolean.TRUE.equals(addBos) && bosId != null;
        boolean eos = manual && Boolean.TRUE.equals(addEos) && eosId != null;
        int[] out = new int[ids.length + (bos ? 1 : 0) + (eos ? 1 : 0)];
        int n = 0;
        if (bos) {
            out[n++] = bosId;
        }
        for (long id : ids) {
            out[n++] = (int) id;
        }
        if (eos) {
            out[n++] = eosId;
        }
        return out;
    }

    /** Decodes ids to text; skipSpecialTokens drops tokens marked special (BOS, EOS, ChatML...). */
    public String decode(int[] ids, boolean skipSpecialTokens) {
        long[] wide = new long[ids.length];
        for (int i = 0; i < ids.length; i++) {
            if (ids[i] < 0 || ids[i] >= vocabSize) {
                throw new JTuneException("token id " + ids[i] + " at position " + i + " is outside"
                        + " the vocabulary [0, " + vocabSize + ") of " + origin
                        + "; were the ids produced by another model?");
            }
            wide[i] = ids[i];
        }
        return hf.decode(wide, skipSpecialTokens);
    }

    /** Number of ids, added tokens included (what an embedding table must at least cover). */
    public int vocabSize() {
        return vocabSize;
    }

    public OptionalInt bosTokenId() {
        return bosId == null ? OptionalInt.empty() : OptionalInt.of(bosId);
    }

    public OptionalInt eosTokenId() {
        return eosId == null ? OptionalInt.empty() : OptionalInt.of(eosId);
    }

    public Optional<String> bosToken() {
        return Optional.ofNullable(bosToken);
    }

    public Optional<String> eosToken() {
        return Optional.ofNullable(eosToken);
    }

    /** The id of an exact token string as stored in the vocabulary, e.g. "<|im_end|>". */
    public OptionalInt tokenId(String token) {
        Integer id = tokenIds.get(token);
        return id == null ? OptionalInt.empty() : OptionalInt.of(id);
    }

    public Optional<ChatTemplate> chatTemplate() {
        return Optional.ofNullable(chatTemplate);
    }

    public StreamDecoder newStreamDecoder(boolean skipSpecialTokens) {
        return new StreamDecoder(this, skipSpecialTokens);
    }

    @Override
    public void close() {
        hf.close();
    }

    private static Map<String, Integer> readTokenIds(JsonNode tree) {
        Map<String, Integer> ids = new HashMap<>();
        JsonNode vocab = tree.path("model").path("vocab");
        if (vocab.isObject()) {               // BPE, WordPiece, WordLevel: {"token": id}
            for (Iterator<Map.Entry<String, JsonNode>> it = vocab.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                ids.put(e.getKey(), e.getValue().asInt());
            }
        } else if (vocab.isArray()) {         // Unigram: [["piece", score], ...], id = position
            for (int i = 0; i < vocab.size(); i++) {
                ids.put(vocab.get(i).path(0).asText(), i);
            }
        }
        for (JsonNode added : tree.path("added_tokens")) {
            ids.put(added.path("content").asText(), added.path("id").asInt());
        }
        return ids;
    }

    static String readText(Path file) {
        try {
            return Files.readString(file, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new JTuneException("cannot read " + file + ": " + e.getMessage(), e);
        }
    }

    static JsonNode readJson(Path file) {
        try {
            return JSON.readTree(readText(file));
        } catch (IOException e) {
            throw new JTuneException(file + " is not valid JSON (" + e.getMessage()
                    + "); is the file truncated or a Git LFS pointer?", e);
        }
    }

    /** What transformers reads from tokenizer_config.json and special_tokens_map.json. */
    private record Config(String bosToken, String eosToken, Boolean addBos, Boolean addEos,
            String chatTemplate) {

        static Config read(Path tokenizerConfig, Path specialTokensMap) {
            String bos = null;
            String eos = null;
            Boolean addBos = null;
            Boolean addEos = null;
            String template = null;
            if (tokenizerConfig != null) {
                JsonNode c = readJson(tokenizerConfig);
                bos = tokenString(c.get("bos_token"));
                eos = tokenString(c.get("eos_token"));
                if (c.path("add_bos_token").isBoolean()) {
                    addBos = c.get("add_bos_token").asBoolean();
                }
                if (c.path("add_eos_token").isBoolean()) {
                    addEos = c.get("add_eos_token").asBoolean();
                }
                template = chatTemplate(c.get("chat_template"), tokenizerConfig);
            }
            if (specialTokensMap != null) {
                // transformers lets special_tokens_map.json override tokenizer_config.json.
                JsonNode m = readJson(specialTokensMap);
                String b = tokenString(m.get("bos_token"));
                String e = tokenString(m.get("eos_token"));
                bos = b != null ? b : bos;
                eos = e != null ? e : eos;
            }
            return new Config(bos, eos, addBos, addEos, template);
        }

        /** A special token is either "<s>" or an AddedToken object {"content": "<s>", ...}. */
        private static String tokenString(JsonNode node) {
            if (node == null || node.isNull()) {
                return null;
            }
            if (node.isTextual()) {
                return node.asText();
            }
            if (node.isObject() && node.path("content").isTextual()) {
                return node.get("content").asText();
            }
            return null;
        }

        /** A string, or a list of {name, template} of which "default" is the chat template. */
        private static String chatTemplate(JsonNode node, Path file) {
            if (node == null || node.isNull()) {
                return null;
            }
            if (node.isTextual()) {
                return node.asText();
            }
            if (node.isArray()) {
                for (JsonNode t : node) {
                    if ("default".equals(t.path("name").asText())) {
                        return t.path("template").asText();
                    }
                }
                return null;   // only named tool_use/rag templates: no plain chat template
            }
            throw new JTuneException("chat_template in " + file + " is neither a string nor a list"
                    + " of {name, template}; fix or remove it");
        }
    }

    /**
     * Builds a tokenizer.json for a GPT-2-style checkpoint that ships only vocab.json + merges.txt,
     * spelling out what transformers' converter (GPT2Converter) produces, so the HF library does
     * the actual BPE. Added tokens come from tokenizer_config.json's added_tokens_decoder.
     */
    static final class ByteLevelBpe {
        private ByteLevelBpe() {}

        static String tokenizerJson(Path vocabJson, Path mergesTxt, JsonNode configOrNull) {
            JsonNode vocab = readJson(vocabJson);
            if (!vocab.isObject()) {
                throw new JTuneException(vocabJson + " is not a {token: id} object; is it a"
                        + " GPT-2 style vocab.json?");
            }
            ArrayNode merges = JSON.createArrayNode();
            for (String line : readText(mergesTxt).split("\n")) {
                line = line.strip();
                // The first line of GPT-2's merges.txt is a "#version" header, not a merge.
                if (line.isEmpty() || line.startsWith("#version")) {
                    continue;
                }
                merges.add(line);
            }
            boolean addPrefixSpace = configOrNull != null
                    && configOrNull.path("add_prefix_space").asBoolean(false);
            ObjectNode root = JSON.createObjectNode();
            root.put("version", "1.0");
            root.putNull("truncation");
            root.putNull("padding");
            ArrayNode added = root.putArray("added_tokens");
            if (configOrNull != null && configOrNull.path("added_tokens_decoder").isObject()) {
                for (Iterator<Map.Entry<String, JsonNode>> it =
                        configOrNull.get("added_tokens_decoder").fields(); it.hasNext(); ) {
                    Map.Entry<String, JsonNode> e = it.next();
                    JsonNode t = e.getValue();
                    ObjectNode a = added.addObject();
                    a.put("id", Integer.parseInt(e.getKey()));
                    a.put("content", t.path("content").asText());
                    a.put("single_word", t.path("single_word").asBoolean(false));
                    a.put("lstrip", t.path("lstrip").asBoolean(false));
                    a.put("rstrip", t.path("rstrip").asBoolean(false));
                    a.put("normalized", t.path("normalized").asBoolean(false));
                    a.put("special", t.path("special").asBoolean(true));
                }
            }
            root.putNull("normalizer");
            ObjectNode pre = root.putObject("pre_tokenizer");
            pre.put("type", "ByteLevel");
            pre.put("add_prefix_space", addPrefixSpace);
            pre.put("trim_offsets", true);
            pre.put("use_regex", true);
            ObjectNode post = root.putObject("post_processor");
            post.put("type", "ByteLevel");
            post.put("add_prefix_space", addPrefixSpace);
            post.put("trim_offsets", false);
            post.put("use_regex", true);
            ObjectNode dec = root.putObject("decoder");
            dec.put("type", "ByteLevel");
            dec.put("add_prefix_space", true);
            dec.put("trim_offsets", true);
            dec.put("use_regex", true);
            ObjectNode model = root.putObject("model");
            model.put("type", "BPE");
            model.putNull("dropout");
            model.putNull("unk_token");
            model.put("continuing_subword_prefix", "");
            model.put("end_of_word_suffix", "");
            model.put("fuse_unk", false);
            model.put("byte_fallback", false);
            model.set("vocab", vocab);
            model.set("merges", merges);
            try {
                return JSON.writeValueAsString(root);
            } catch (IOException e) {
                throw new IllegalStateException("cannot serialize a JSON tree we just built", e);
            }
        }
    }

    /** Used by StreamDecoder: decode a slice without copying at the call site. */
    String decode(List<Integer> ids, int from, int to, boolean skipSpecialTokens) {
        int[] slice = new int[to - from];
        for (int i = from; i < to; i++) {
            slice[i - from] = ids.get(i);
        }
        return decode(slice, skipSpecialTokens);
    }
}
