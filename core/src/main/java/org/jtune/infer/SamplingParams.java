package org.jtune.infer;

import java.util.List;
import org.jtune.JTuneException;

/**
 * How to pick the next token and when to stop. {@code temperature == 0} means greedy (argmax).
 * Filters apply in Hugging Face's order: repetition penalty, temperature, top-k, top-p, min-p.
 * {@code topK == 0}, {@code topP == 1} and {@code minP == 0} disable their filter;
 * {@code repetitionPenalty == 1} disables the penalty.
 */
public record SamplingParams(double temperature, int topK, double topP, double minP, double repetitionPenalty,
                             long seed, int maxNewTokens, List<String> stopStrings, boolean ignoreEos) {
    public SamplingParams {
        if (temperature < 0 || Double.isNaN(temperature)) {
            throw new JTuneException("temperature must be >= 0 (0 = greedy), got " + temperature);
        }
        if (topK < 0) {
            throw new JTuneException("top-k must be >= 0 (0 = off), got " + topK);
        }
        if (!(topP > 0 && topP <= 1)) {
            throw new JTuneException("top-p must be in (0, 1] (1 = off), got " + topP);
        }
        if (!(minP >= 0 && minP < 1)) {
            throw new JTuneException("min-p must be in [0, 1) (0 = off), got " + minP);
        }
        if (!(repetitionPenalty > 0)) {
            throw new JTuneException("repetition penalty must be > 0 (1 = off), got " + repetitionPenalty);
        }
        if (maxNewTokens < 0) {
            throw new JTuneException("max new tokens must be >= 0, got " + maxNewTokens);
        }
        stopStrings = List.copyOf(stopStrings);
    }

    public static SamplingParams greedy(int maxNewTokens) {
        return new SamplingParams(0, 0, 1, 0, 1, 0, maxNewTokens, List.of(), false);
    }

    public SamplingParams withTemperature(double t) {
        return new SamplingParams(t, topK, topP, minP, repetitionPenalty, seed, maxNewTokens, stopStrings, ignoreEos);
    }

    public SamplingParams withTopK(int k) {
        return new SamplingParams(temperature, k, topP, minP, repetitionPenalty, seed, maxNewTokens, stopStrings, ignoreEos);
    }

    public SamplingParams withTopP(double p) {
        return new SamplingParams(temperature, topK, p, minP, repetitionPenalty, seed, maxNewTokens, stopStrings, ignoreEos);
    }

    public SamplingParams withMinP(double p) {
        return new SamplingParams(temperature, topK, topP, p, repetitionPenalty, seed, maxNewTokens, stopStrings, ignoreEos);
    }

    public SamplingParams withRepetitionPenalty(double r) {
        return new SamplingParams(temperature, topK, topP, minP, r, seed, maxNewTokens, stopStrings, ignoreEos);
    }

    public SamplingParams withSeed(long s) {
        return new SamplingParams(temperature, topK, topP, minP, repetitionPenalty, s, maxNewTokens, stopStrings, ignoreEos);
    }

    public SamplingParams withMaxNewTokens(int n) {
        return new SamplingParams(temperature, topK, topP, minP, repetitionPenalty, seed, n, stopStrings, ignoreEos);
    }

    public SamplingParams withStopStrings(List<String> stops) {
        return new SamplingParams(temperature, topK, topP, minP, repetitionPenalty, seed, maxNewTokens, stops, ignoreEos);
    }

    public SamplingParams withIgnoreEos(boolean ignore) {
        return new SamplingParams(temperature, topK, topP, minP, repetitionPenalty, seed, maxNewTokens, stopStrings, ignore);
    }
}
