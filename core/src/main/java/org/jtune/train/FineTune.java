package org.jtune.train;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;
import org.jtune.JTuneException;
import org.jtune.io.ModelDirWriter;
import org.jtune.autograd.Tape;
import org.jtune.autograd.TrainingOps;
import org.jtune.io.safetensors.SafetensorsFile;
import org.jtune.io.safetensors.SafetensorsWriter;
import org.jtune.kernel.KernelProvider;
import org.jtune.model.LanguageModel;
import org.jtune.model.Linear;
import org.jtune.model.ModelRegistry;
import org.jtune.model.ModelState;
import org.jtune.model.WeightLoader;
import org.jtune.optim.AdamW;
import org.jtune.optim.GradientClipping;
import org.jtune.optim.LrSchedule;
import org.jtune.optim.Parameter;
import org.jtune.peft.LoraAdapter;
import org.jtune.peft.LoraConfig;
import org.jtune.peft.LoraWeights;
import org.jtune.tokenizer.Tokenizer;
import org.jtune.train.data.Batch;
import org.jtune.train.data.Batcher;
import org.jtune.train.data.DataSplit;
import org.jtune.train.data.DatasetReader;
import org.jtune.train.data.DatasetSummary;
import org.jtune.train.data.Example;
import org.jtune.train.data.PromptFormat;
import org.jtune.train.data.Tokenization;
import org.jtune.train.data.TrainingRecord;
import org.jtune.train.report.LossPlot;
import org.jtune.train.report.Metrics;
import org.jtune.train.report.ProgressBar;

/**
 * The fine-tuning recipe (LoRA or full), flat: setup, train step, evaluate, checkpoint, resume,
 * save. The model's own forward runs on {@link TrainingOps}, so training computes exactly what
 * generation computes. Each optimizer step takes {@code batchSize x gradAccum} sequences, runs them
 * one at a time (gradients accumulate on the tape) and averages the loss over all their target
 * tokens, like HF's Trainer. A run is deterministic for a given seed and thread count: data order
 * comes from (seed, epoch, position), LoRA init from the seed, dropout masks from (seed, step), so a
 * checkpoint's (step, epoch, position) plus weights and optimizer state restore it exactly.
 *
 * <p>Output directory: {@code config.json} (effective settings), {@code metrics.jsonl},
 * {@code loss.png}, {@code checkpoints/step-N/} (atomic), and the result: {@code adapter/} (PEFT
 * format) for LoRA or {@code model/} (an HF model directory, f32 weights) for full fine-tuning.
 */
public final class FineTune {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final int CHECKPOINTS_KEPT = 2;

    /** What a run produced. {@code initialValLoss}/{@code finalValLoss} are NaN without validation data. */
    public record Result(Path output, long steps, double lastTrainLoss, double initialValLoss, double finalValLoss,
                         Path result) {
    }

    private final FineTuneConfig cfg;
    private final PrintStream log;
    private final Path out;
    private final Path modelDir;
    private LanguageModel model;
    private Tokenizer tokenizer;
    private LoraAdapter adapter;
    private final List<Parameter> params = new ArrayList<>();
    private final Set<float[]> paramArrays = Collections.newSetFromMap(new IdentityHashMap<>());
    private final Tape tape = new Tape();
    private TrainingOps ops;
    private List<Example> trainExamples;
    private List<Example> valExamples;
    private int padId;

    private FineTune(FineTuneConfig cfg, PrintStream log) {
        if (cfg.model() == null || cfg.data() == null) {
            throw new JTuneException("fine-tuning needs a model (--model DIR) and data (--data FILE)");
        }
        this.cfg = cfg;
        this.log = log;
        this.modelDir = Path.of(cfg.model());
        this.out = Path.of(cfg.output() != null ? cfg.output()
                : "runs/" + modelDir.getFileName() + "-" + cfg.method());
    }

    /** Runs (or with {@code resume}, continues) a fine-tuning; {@code stopAfterStep} > 0 stops early (an interruption, for tests). */
    public static Result run(FineTuneConfig cfg, boolean resume, long stopAfterStep, PrintStream log) {
        FineTune ft = new FineTune(cfg.validated(), log);
        try {
            return ft.train(resume, stopAfterStep);
        } finally {
            if (ft.model != null) {
                ft.model.close();
            }
            if (ft.tokenizer != null) {
                ft.tokenizer.close();
            }
        }
    }

    // ------------------------------------------------------------------ setup

    /** Training and validation examples of a run, prepared exactly as the run prepares them. */
    public record Data(List<Example> train, List<Example> validation, DatasetSummary summary, boolean chatTemplate) {
    }

    /** Reads, splits (by seed) and tokenizes the run's data; the validation set is the same for every call with the same settings. */
    public static Data prepare(FineTuneConfig cfg, Tokenizer tokenizer) {
        DatasetReader.Result read = DatasetReader.read(Path.of(cfg.data()), cfg.skipMalformed());
        PromptFormat format = switch (cfg.promptFormat()) {
            case "alpaca" -> PromptFormat.alpaca();
            case "chat" -> PromptFormat.chatTemplate(tokenizer.chatTemplate().orElseThrow(() -> new JTuneException(
                    "prompt-format chat, but the model has no chat_template; use prompt-format alpaca")));
            default -> PromptFormat.forTokenizer(tokenizer);
        };
        DataSplit<TrainingRecord> split = cfg.valCount() > 0 ? DataSplit.byCount(read.records(), cfg.valCount(), cfg.seed())
                : cfg.valFraction() > 0 ? DataSplit.byFraction(read.records(), cfg.valFraction(), cfg.seed())
                : new DataSplit<>(read.records(), List.of());
        Tokenization tk = new Tokenization(tokenizer, format, cfg.maxLength(), cfg.trainOnPrompt());
        Tokenization.Result train = tk.tokenizeAll(split.train());
        Tokenization.Result val = tk.tokenizeAll(split.validation());
        return new Data(train.examples(), val.examples(), DatasetSummary.of(read, train), format.usesChatTemplate());
    }

    private void setupData() {
        tokenizer = Tokenizer.load(modelDir);
        Data data = prepare(cfg, tokenizer);
        trainExamples = data.train();
        valExamples = data.validation();
        padId = Batcher.padIdFor(tokenizer, modelDir);
        log.println("data      " + data.summary().format().strip().replace("\n", "\n          "));
        log.printf("          %d training and %d validation examples (%s prompt format)%n", trainExamples.size(),
                valExamples.size(), data.chatTemplate() ? "chat template" : "Alpaca");
    }

    private void setupModel() {
        model = ModelRegistry.load(modelDir, cfg.isLora() ? WeightLoader.Options.INFERENCE : WeightLoader.Options.TRAINABLE);
        ops = new TrainingOps(KernelProvider.get(), tape);
        if (cfg.isLora()) {
            String type = model.info().modelType();
            LoraConfig lc = new LoraConfig(cfg.loraR(), cfg.loraAlpha(), cfg.loraDropout(),
                    cfg.targetModules() != null ? cfg.targetModules() : LoraConfig.defaultTargets(type), null,
                    type.equals("gpt2"), "none", false, modelDir.toAbsolutePath().toString(), LoraConfig.CAUSAL_LM);
            Map<String, int[]> shapes = new LinkedHashMap<>();
            Map<String, Linear> linears = new LinkedHashMap<>();
            for (Linear l : model.linearLayers()) {
                shapes.put(l.module(), new int[] {l.outFeatures(), l.inFeatures()});
                linears.put(l.module(), l);
            }
            adapter = LoraAdapter.init(lc, shapes, cfg.seed());
            float scaling = (float) lc.scaling();
            for (Map.Entry<String, LoraWeights> e : adapter.modules().entrySet()) {
                LoraWeights w = e.getValue();
                linears.get(e.getKey()).attach(Linear.Lora.of(w.a(), w.b(), w.r(), w.in(), w.out(), scaling));
                addParam(e.getKey() + ".lora_A.weight", new long[] {w.r(), w.in()}, w.a(), true);
                addParam(e.getKey() + ".lora_B.weight", new long[] {w.out(), w.r()}, w.b(), true);
            }
            ops.loraDropout(cfg.loraDropout(), cfg.seed());
        } else {
            for (WeightLoader.Loaded m : model.weights().matrices()) {
                addParam(m.name(), new long[] {m.matrix().rows(), m.matrix().cols()}, m.master(), true);
            }
            for (WeightLoader.LoadedVector v : model.weights().vectors()) {
                addParam(v.name(), new long[] {v.values().length}, v.values(), false);   // no decay on norms and biases
            }
        }
        long n = params.stream().mapToLong(Parameter::numel).sum();
        log.printf("model     %s (%s), %,d parameters; training %,d (%s)%n", modelDir.getFileName(), model.info().modelType(),
                model.info().parameterCount(), n, cfg.isLora() ? "LoRA r=" + cfg.loraR() + " on " + adapter.modules().size() + " modules" : "all");
    }

    private void addParam(String name, long[] shape, float[] value, boolean decay) {
        if (!paramArrays.add(value)) {
            return;   // tied weights: one parameter
        }
        params.add(new Parameter(name, shape, value, tape.grad(value), decay));
        ops.trainable(value);
    }

    // ------------------------------------------------------------------ training

    private Result train(boolean resume, long stopAfterStep) {
        setupData();
        setupModel();
        Batcher batcher = new Batcher(trainExamples, new Batcher.Config(cfg.pack() ? Batcher.Mode.PACK : Batcher.Mode.PAD,
                cfg.batchSize(), cfg.maxLength(), padId, cfg.seed(), true, cfg.epochs()));
        long stepsPerEpoch = Math.max(1, (batcher.batchesPerEpoch() + cfg.gradAccum() - 1) / cfg.gradAccum());
        long total = cfg.maxSteps() > 0 ? cfg.maxSteps() : stepsPerEpoch * cfg.epochs();
        LrSchedule schedule = new LrSchedule(LrSchedule.Kind.parse(cfg.schedule()), cfg.learningRate(), cfg.warmupSteps(),
                total, cfg.minLrRatio());
        AdamW opt = new AdamW(cfg.beta1(), cfg.beta2(), cfg.eps(), cfg.weightDecay());
        long step = 0;
        try {
            Files.createDirectories(out);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        Path metricsFile = out.resolve("metrics.jsonl");
        Metrics metrics;
        double initialVal = Double.NaN;
        if (resume) {
            Path ckpt = latestCheckpoint().orElseThrow(() -> new JTuneException("--resume: no checkpoint in "
                    + out.resolve("checkpoints") + "; start the run without --resume"));
            ObjectNode state = loadCheckpoint(ckpt);
            opt = AdamW.load(ckpt.resolve("optimizer.safetensors"));
            step = state.get("step").asLong();
            batcher.seek(state.get("epoch").asInt(), state.get("position").asInt());
            initialVal = state.get("initial_val_loss").asDouble(Double.NaN);
            metrics = Metrics.resume(metricsFile, step);
            log.printf("resumed   from %s (step %d of %d)%n", ckpt, step, total);
        } else {
            writeJson(out.resolve("config.json"), cfg.toJson());
            metrics = Metrics.create(metricsFile);
            initialVal = validationLoss();
            if (!Double.isNaN(initialVal)) {
                log.printf("eval      step 0: validation loss %.4f%n", initialVal);
            }
        }
        int vocab = model.info().vocabSize();
        ModelState st = model.newState(cfg.maxLength(), cfg.maxLength(), ops);
        float[] logits = new float[cfg.maxLength() * vocab];
        ProgressBar progress = ProgressBar.create(total);
        long started = System.nanoTime();
        double lastLoss = Double.NaN, lastVal = Double.NaN;
        try (metrics) {
            while (step < total && batcher.hasNext()) {
                long t0 = System.nanoTime();
                List<Batch> batches = new ArrayList<>();
                for (int m = 0; m < cfg.gradAccum() && batcher.hasNext(); m++) {
                    batches.add(batcher.next());
                }
                step++;
                ops.step(step);
                int targets = 0;
                for (Batch b : batches) {
                    targets += b.lossTokens();
                }
                double lossSum = 0;
                long tokens = 0;
                for (Batch b : batches) {
                    for (int r = 0; r < b.rows(); r++) {
                        int len = b.lengths()[r];
                        int[] ids = new int[len], labels = new int[len];
                        for (int c = 0; c < len; c++) {
                            ids[c] = b.inputId(r, c);
                            labels[c] = b.label(r, c);
                        }
                        int rowTargets = CausalLmLoss.targets(labels, len);
                        tokens += len;
                        if (rowTargets == 0 || targets == 0) {
                            continue;
                        }
                        st.cache.truncate(0);
                        model.forward(st, ids, 0, len, logits, true);
                        double rowLoss = CausalLmLoss.forwardBackward(logits, labels, len, vocab, tape.grad(logits),
                                (double) rowTargets / targets);
                        lossSum += rowLoss * rowTargets;
                        tape.backward();
                        tape.zeroActivationGrads(paramArrays);
                    }
                }
                double loss = targets == 0 ? Double.NaN : lossSum / targets;
                double gradNorm = cfg.maxGradNorm() > 0 ? GradientClipping.clipByGlobalNorm(params, cfg.maxGradNorm())
                        : GradientClipping.globalNorm(params);
                double lr = schedule.lr(step - 1);
                if (Double.isFinite(gradNorm)) {
                    opt.step(params, lr);
                } else {
                    log.printf("%nstep %d: gradient norm is %s; skipping the update%n", step, gradNorm);
                }
                AdamW.zeroGrad(params);
                double seconds = (System.nanoTime() - t0) / 1e9;
                lastLoss = loss;
                Metrics.Entry entry = new Metrics.Entry(step, batcher.epoch() + (double) batcher.position() / batcher.batchesPerEpoch(),
                        loss, lr, gradNorm, tokens / seconds, null, (System.nanoTime() - started) / 1e9);
                if (step % cfg.evalEvery() == 0 || step == total) {
                    lastVal = validationLoss();
                    if (!Double.isNaN(lastVal)) {
                        entry = entry.withValLoss(lastVal);
                    }
                }
                metrics.append(entry);
                progress.update(step, loss, tokens / seconds);
                if (step % cfg.saveEvery() == 0 || step == total) {
                    saveCheckpoint(step, batcher, opt, initialVal);
                }
                if (stopAfterStep > 0 && step >= stopAfterStep) {
                    break;
                }
            }
        }
        progress.finish();
        List<Metrics.Entry> all = Metrics.read(metricsFile);
        if (!all.isEmpty()) {
            LossPlot.write(out.resolve("loss.png"), all, "jtune " + cfg.method() + " fine-tuning of " + modelDir.getFileName(), 900, 520);
        }
        Path result = step >= total ? saveResult() : null;
        if (!Double.isNaN(lastVal)) {
            log.printf("eval      step %d: validation loss %.4f (was %.4f)%n", step, lastVal, initialVal);
        }
        if (result != null) {
            log.println("saved     " + result);
        }
        return new Result(out, step, lastLoss, initialVal, lastVal, result);
    }

    /** Token-mean validation loss with the current weights (no tape), NaN without validation data. */
    private double validationLoss() {
        if (valExamples.isEmpty()) {
            return Double.NaN;
        }
        return evaluate(model, valExamples, cfg.maxLength());
    }

    /** Mean NLL over the target tokens of {@code examples}, on fresh inference states. */
    public static double evaluate(LanguageModel model, List<Example> examples, int maxLength) {
        int vocab = model.info().vocabSize();
        ModelState st = model.newState(maxLength, maxLength);
        float[] logits = new float[maxLength * vocab];
        double sum = 0;
        long count = 0;
        for (Example e : examples) {
            int len = Math.min(e.length(), maxLength);
            int t = CausalLmLoss.targets(e.labels(), len);
            if (t == 0) {
                continue;
            }
            st.cache.truncate(0);
            model.forward(st, e.inputIds(), 0, len, logits, true);
            sum += CausalLmLoss.forwardBackward(logits, e.labels(), len, vocab, null, 0) * t;
            count += t;
        }
        return count == 0 ? Double.NaN : sum / count;
    }

    // ------------------------------------------------------------------ checkpoints

    private java.util.Optional<Path> latestCheckpoint() {
        Path dir = out.resolve("checkpoints");
        if (!Files.isDirectory(dir)) {
            return java.util.Optional.empty();
        }
        try (Stream<Path> s = Files.list(dir)) {
            return s.filter(p -> p.getFileName().toString().matches("step-\\d+") && Files.exists(p.resolve("trainer_state.json")))
                    .max(Comparator.comparing(p -> p.getFileName().toString()));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Writes {@code checkpoints/step-N} through a temporary directory renamed at the end: a crash never leaves half a checkpoint. */
    private void saveCheckpoint(long step, Batcher batcher, AdamW opt, double initialVal) {
        Path dir = out.resolve("checkpoints");
        Path target = dir.resolve(String.format("step-%08d", step));
        Path tmp = dir.resolve(".tmp-" + target.getFileName());
        try {
            Files.createDirectories(dir);
            deleteRecursively(tmp);
            Files.createDirectories(tmp);
            SafetensorsWriter w = new SafetensorsWriter().metadata("format", "jtune-checkpoint");
            for (Parameter p : params) {
                w.addFloats(p.name(), p.shape(), p.value());
            }
            w.write(tmp.resolve("trainable.safetensors"));
            opt.save(tmp.resolve("optimizer.safetensors"));
            ObjectNode state = JSON.createObjectNode();
            state.put("step", step);
            state.put("epoch", batcher.epoch());
            state.put("position", batcher.position());
            state.put("seed", cfg.seed());
            state.put("initial_val_loss", initialVal);
            state.set("config", cfg.toJson());
            writeJson(tmp.resolve("trainer_state.json"), state);
            deleteRecursively(target);
            Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE);
            try (Stream<Path> s = Files.list(dir)) {
                List<Path> old = s.filter(p -> p.getFileName().toString().matches("step-\\d+"))
                        .sorted(Comparator.comparing((Path p) -> p.getFileName().toString()).reversed()).toList();
                for (Path p : old.subList(Math.min(CHECKPOINTS_KEPT, old.size()), old.size())) {
                    deleteRecursively(p);
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write checkpoint " + target, e);
        }
    }

    private ObjectNode loadCheckpoint(Path ckpt) {
        try (SafetensorsFile f = SafetensorsFile.open(ckpt.resolve("trainable.safetensors"))) {
            for (Parameter p : params) {
                if (!f.contains(p.name())) {
                    throw new JTuneException("checkpoint " + ckpt + " has no " + p.name()
                            + "; was it written by a run with other settings (method, LoRA targets)?");
                }
                float[] v = f.readFloats(p.name());
                if (v.length != p.value().length) {
                    throw new JTuneException("checkpoint " + ckpt + ": " + p.name() + " has " + v.length + " values, expected "
                            + p.value().length);
                }
                System.arraycopy(v, 0, p.value(), 0, v.length);
            }
        }
        try {
            return (ObjectNode) JSON.readTree(Files.readString(ckpt.resolve("trainer_state.json")));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    // ------------------------------------------------------------------ results

    private Path saveResult() {
        if (cfg.isLora()) {
            Path dir = out.resolve("adapter");
            adapter.save(dir);
            return dir;
        }
        Path dir = out.resolve("model");
        SafetensorsWriter w = new SafetensorsWriter().metadata("format", "pt");
        Map<float[], WeightLoader.Loaded> matrices = new IdentityHashMap<>();
        for (WeightLoader.Loaded m : model.weights().matrices()) {
            matrices.put(m.master(), m);
        }
        for (Parameter p : params) {
            WeightLoader.Loaded m = matrices.get(p.value());
            if (m != null && m.transposedOnDisk()) {     // back to HF's Conv1D layout [in, out]
                int rows = m.matrix().rows(), cols = m.matrix().cols();
                float[] t = new float[p.value().length];
                for (int r = 0; r < rows; r++) {
                    for (int c = 0; c < cols; c++) {
                        t[c * rows + r] = p.value()[r * cols + c];
                    }
                }
                w.addFloats(p.name(), new long[] {cols, rows}, t);
            } else {
                w.addFloats(p.name(), p.shape(), p.value());
            }
        }
        ModelDirWriter.write(modelDir, dir, w, config -> config.put("torch_dtype", "float32"), true);
        return dir;
    }

    private static void writeJson(Path file, com.fasterxml.jackson.databind.JsonNode node) {
        try {
            Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
            Files.writeString(tmp, node.toPrettyString());
            Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static void deleteRecursively(Path p) throws IOException {
        if (!Files.exists(p)) {
            return;
        }
        try (Stream<Path> s = Files.walk(p)) {
            for (Path q : s.sorted(Comparator.reverseOrder()).toList()) {
                Files.delete(q);
            }
        }
    }
}
