package org.jtune.infer;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashSet;
import java.util.Optional;
import java.util.Set;
import java.util.function.Consumer;
import org.jtune.JTuneException;
import org.jtune.config.GenerationConfig;
import org.jtune.config.HfConfig;
import org.jtune.io.safetensors.DType;
import org.jtune.model.LanguageModel;
import org.jtune.model.ModelRegistry;
import org.jtune.model.WeightLoader;
import org.jtune.tokenizer.Tokenizer;

/**
 * The library's entry point: a Hugging Face model directory loaded as a model, its tokenizer (when
 * the directory has one) and its generation defaults. Open one {@link Session} per conversation.
 * <pre>{@code
 * try (Engine engine = Engine.load(Path.of("models/my-llama"));
 *      Session session = engine.newSession(2048)) {
 *     engine.generate(session, "Once upon a time", SamplingParams.greedy(64), System.out::print);
 * }
 * }</pre>
 */
public final class Engine implements AutoCloseable {
    /** Context used when the caller asks for none: the model's maximum, capped to keep the cache modest. */
    public static final int DEFAULT_CONTEXT_CAP = 4096;

    private final Path dir;
    private final LanguageModel model;
    private final Tokenizer tokenizer;
    private final GenerationConfig generationConfig;
    private final Set<Integer> eosIds;
    private final DType kvCache;

    private Engine(Path dir, LanguageModel model, Tokenizer tokenizer, GenerationConfig gen, Set<Integer> eosIds,
                   DType kvCache) {
        this.dir = dir;
        this.model = model;
        this.kvCache = kvCache;
        this.tokenizer = tokenizer;
        this.generationConfig = gen;
        this.eosIds = eosIds;
    }

    public static Engine load(Path modelDir) {
        return load(modelDir, null);
    }

    /**
     * Loads a model with a LoRA adapter (PEFT format) attached unmerged; {@code adapterDir} may be null. The
     * weights are copied into the layout decode reads fastest ({@link WeightLoader.Options#DECODE}), unless
     * memory is short or {@code -Djtune.weights=mapped} asks to keep them memory-mapped.
     */
    public static Engine load(Path modelDir, Path adapterDir) {
        return load(modelDir, adapterDir, WeightLoader.Options.DECODE);
    }

    /** {@link #load(Path, Path)} with the weights loaded as {@code options} say (INFERENCE: as stored, mapped). */
    public static Engine load(Path modelDir, Path adapterDir, WeightLoader.Options options) {
        LanguageModel model = ModelRegistry.load(modelDir, options);
        try {
            if (adapterDir != null) {
                if (!(org.jtune.peft.Adapters.load(adapterDir) instanceof org.jtune.peft.LoraAdapter lora)) {
                    throw new JTuneException(adapterDir + " is not a LoRA adapter; generation supports LoRA adapters");
                }
                org.jtune.peft.LoraModels.attach(model, lora);
            }
            GenerationConfig gen = GenerationConfig.load(modelDir);
            boolean hasTokenizer = Files.exists(modelDir.resolve("tokenizer.json"))
                    || Files.exists(modelDir.resolve("vocab.json"));
            Tokenizer tok = hasTokenizer ? Tokenizer.load(modelDir) : null;
            Set<Integer> eos = new LinkedHashSet<>(gen.eosTokenIds());
            HfConfig config = HfConfig.load(modelDir);
            eos.addAll(config.getIntList("eos_token_id"));
            if (tok != null) {
                tok.eosTokenId().ifPresent(eos::add);
            }
            return new Engine(modelDir, model, tok, gen, Set.copyOf(eos), defaultKvCache(config, model.info().headDim()));
        } catch (RuntimeException e) {
            model.close();
            throw e;
        }
    }

    public Path dir() {
        return dir;
    }

    public LanguageModel model() {
        return model;
    }

    public Optional<Tokenizer> tokenizer() {
        return Optional.ofNullable(tokenizer);
    }

    /** The tokenizer, or a clear error for models shipped without one. */
    public Tokenizer requireTokenizer() {
        if (tokenizer == null) {
            throw new JTuneException("model " + dir + " has no tokenizer (tokenizer.json); drive it with token ids (--ids)");
        }
        return tokenizer;
    }

    /** The BOS token id (tokenizer, else generation_config.json), or -1 when the model has none. */
    public int bosTokenId() {
        if (tokenizer != null && tokenizer.bosTokenId().isPresent()) {
            return tokenizer.bosTokenId().getAsInt();
        }
        return generationConfig.bosTokenId().orElse(-1);
    }

    public GenerationConfig generationConfig() {
        return generationConfig;
    }

    /** Token ids that end a generation (generation_config.json, config.json and the tokenizer's eos). */
    public Set<Integer> eosIds() {
        return eosIds;
    }

    /**
     * The KV cache precision sessions get by default: BF16 for a model published in bfloat16 ({@code torch_dtype},
     * or {@code dtype} as newer transformers write it), whose own runtime keeps its cache in bf16 too; F32 for
     * any other (float32, and float16, whose 10-bit mantissa a bf16 cache would round away), or for heads of odd
     * width, which the packed bf16 cache cannot hold. Speed is why: a bf16 cache halves the bytes decode reads
     * per position (docs/performance.md).
     */
    public static DType defaultKvCache(HfConfig config, int headDim) {
        String published = config.getString("torch_dtype", config.getString("dtype", ""));
        return "bfloat16".equals(published) && headDim % 2 == 0 ? DType.BF16 : DType.F32;
    }

    /** {@link #defaultKvCache(HfConfig, int)} for this model. */
    public DType defaultKvCache() {
        return kvCache;
    }

    /**
     * A session with a context of {@code maxContext} tokens (0 means the model's maximum, capped at
     * {@value #DEFAULT_CONTEXT_CAP}) and the KV cache in {@link #defaultKvCache()}.
     */
    public Session newSession(int maxContext) {
        return newSession(maxContext, kvCache);
    }

    /** {@link #newSession(int)} with the KV cache in {@code kvCache}: F32, or BF16 (half the memory, keys and values rounded). */
    public Session newSession(int maxContext, DType kvCache) {
        int max = model.info().maxPositionEmbeddings();
        if (maxContext > max) {
            throw new JTuneException("context of " + maxContext + " tokens exceeds the model's maximum of " + max);
        }
        return new Session(model, maxContext > 0 ? maxContext : Math.min(max, DEFAULT_CONTEXT_CAP),
                Session.DEFAULT_MAX_CHUNK, kvCache);
    }

    /** Encodes text as a prompt: with the tokenizer's special tokens (e.g. BOS) when the session is empty. */
    public int[] encodePrompt(Session session, String text) {
        return requireTokenizer().encode(text, session.length() == 0);
    }

    public GenerationResult generate(Session session, String prompt, SamplingParams params, Consumer<String> onText) {
        return generate(session, encodePrompt(session, prompt), params, onText);
    }

    public GenerationResult generate(Session session, int[] promptIds, SamplingParams params, Consumer<String> onText) {
        return new Generator(session, tokenizer, eosIds).generate(promptIds, params, onText);
    }

    @Override
    public void close() {
        if (tokenizer != null) {
            tokenizer.close();
        }
        model.close();
    }
}
