package org.jtune.model;

import java.util.List;

/**
 * Linear layers whose common input can be rescaled per channel without changing the model's
 * function, because the rescaling folds exactly into what produces that input (SmoothQuant): a norm
 * in front ({@code normWeight}, and its bias for LayerNorm), or a linear layer whose output feeds
 * the consumers only through linear operations ({@code producer}: v_proj before o_proj through the
 * attention average, up_proj before down_proj through the gate product). {@code channelOf} maps each
 * consumer input channel to the producer output channel it comes from (GQA: several query heads
 * read one kv head); null means the identity.
 */
public record SmoothGroup(String name, float[] normWeight, float[] normBias, Linear producer, List<Linear> consumers,
                          int[] channelOf) {
    /** Channels that carry one smoothing scale each. */
    public int channels() {
        return normWeight != null ? normWeight.length : producer.outFeatures();
    }

    /** The scale channel of consumer input column c. */
    public int channel(int c) {
        return channelOf == null ? c : channelOf[c];
    }
}
