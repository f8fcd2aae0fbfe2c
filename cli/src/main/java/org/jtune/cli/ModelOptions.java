package org.jtune.cli;

import java.nio.file.Path;
import picocli.CommandLine.Option;

/** Where the model is and how big a context its session gets. */
final class ModelOptions {
    @Option(names = {"-m", "--model"}, required = true, paramLabel = "DIR",
            description = "Hugging Face model directory (config.json, *.safetensors, tokenizer.json)")
    Path model;

    @Option(names = "--adapter", paramLabel = "DIR", description = "LoRA adapter directory (PEFT format) applied without merging")
    Path adapter;

    @Option(names = "--max-context", paramLabel = "N", defaultValue = "0",
            description = "context size of the session in tokens (default: the model's maximum, at most 4096)")
    int maxContext;
}
