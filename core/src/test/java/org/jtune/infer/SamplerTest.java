package org.jtune.infer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.jtune.JTuneException;
import org.junit.jupiter.api.Test;

class SamplerTest {
    static float[] logits(double... v) {
        float[] f = new float[v.length];
        for (int i = 0; i < v.length; i++) {
            f[i] = (float) v[i];
        }
        return f;
    }

    @Test
    void greedyPicksArgmax() {
        Sampler s = new Sampler(SamplingParams.greedy(1), 4);
        assertEquals(2, s.sample(logits(0.1, 0.5, 3.0, -1), new int[0], 0));
    }

    @Test
    void repetitionPenaltyFollowsHfSemanticsAndCountsEachTokenOnce() {
        // HF: positive logits are divided by the penalty, negative ones multiplied, once per distinct id.
        Sampler s = new Sampler(SamplingParams.greedy(1).withRepetitionPenalty(2.0), 3);
        float[] l = logits(4.0, 3.0, -1.0);
        int pick = s.sample(l, new int[] {0, 0, 0, 2}, 4);
        assertEquals(2.0f, l[0]);
        assertEquals(-2.0f, l[2]);
        assertEquals(1, pick);
    }

    @Test
    void topKOneIsGreedyWhateverTheTemperature() {
        Sampler s = new Sampler(SamplingParams.greedy(1).withTemperature(5.0).withTopK(1).withSeed(7), 5);
        for (int i = 0; i < 50; i++) {
            assertEquals(3, s.sample(logits(1, 2, 0, 2.5, 1), new int[0], 0));
        }
    }

    @Test
    void topPKeepsTheSmallestSetReachingTheMass() {
        // probabilities 0.5, 0.3, 0.2: top-p 0.6 keeps {0, 1}; token 2 must never appear.
        float[] base = logits(Math.log(0.5), Math.log(0.3), Math.log(0.2));
        Sampler s = new Sampler(SamplingParams.greedy(1).withTemperature(1.0).withTopP(0.6).withSeed(1), 3);
        int[] counts = new int[3];
        for (int i = 0; i < 4000; i++) {
            counts[s.sample(base.clone(), new int[0], 0)]++;
        }
        assertEquals(0, counts[2]);
        // renormalized 0.5/0.8 = 0.625 for token 0
        assertEquals(0.625, counts[0] / 4000.0, 0.03);
    }

    @Test
    void minPDropsUnlikelyTokens() {
        float[] base = logits(Math.log(0.6), Math.log(0.35), Math.log(0.05));
        Sampler s = new Sampler(SamplingParams.greedy(1).withTemperature(1.0).withMinP(0.1).withSeed(3), 3);
        for (int i = 0; i < 2000; i++) {
            assertTrue(s.sample(base.clone(), new int[0], 0) != 2);
        }
    }

    @Test
    void samplingMatchesTheDistributionAndIsReproducibleBySeed() {
        float[] base = logits(Math.log(0.7), Math.log(0.2), Math.log(0.1));
        SamplingParams p = SamplingParams.greedy(1).withTemperature(1.0).withSeed(11);
        Sampler a = new Sampler(p, 3), b = new Sampler(p, 3);
        int[] counts = new int[3];
        for (int i = 0; i < 5000; i++) {
            int x = a.sample(base.clone(), new int[0], 0);
            assertEquals(x, b.sample(base.clone(), new int[0], 0));
            counts[x]++;
        }
        assertEquals(0.7, counts[0] / 5000.0, 0.03);
        assertEquals(0.1, counts[2] / 5000.0, 0.02);
    }

    @Test
    void rejectsInvalidParameters() {
        assertThrows(JTuneException.class, () -> SamplingParams.greedy(1).withTopP(0));
        assertThrows(JTuneException.class, () -> SamplingParams.greedy(1).withTemperature(-1));
        assertThrows(JTuneException.class, () -> SamplingParams.greedy(1).withMinP(1.5));
        assertThrows(JTuneException.class, () -> new SamplingParams(0, 0, 1, 0, 0, 0, 1, List.of(), false));
    }
}
