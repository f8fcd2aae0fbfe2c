package org.jtune.peft;

import java.nio.file.Path;

/**
 * A parameter-efficient adapter in Hugging Face PEFT's on-disk format: a directory holding
 * {@code adapter_config.json} and {@code adapter_model.safetensors}. {@link Adapters#load} reads any
 * supported kind; each kind saves itself so that PEFT's {@code PeftModel.from_pretrained} loads it.
 */
public sealed interface Adapter permits LoraAdapter, PrefixAdapter {
    /** PEFT's {@code peft_type}: "LORA" or "PREFIX_TUNING". */
    String peftType();

    /** The model the adapter belongs to, as recorded in the config; may be null. */
    String baseModelNameOrPath();

    /** Writes the adapter into {@code dir} (created if needed) so that a crash never leaves a loadable half. */
    void save(Path dir);
}
