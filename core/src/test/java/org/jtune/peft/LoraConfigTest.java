package org.jtune.peft;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.jtune.JTuneException;
import org.junit.jupiter.api.Test;

class LoraConfigTest {

    @Test
    void suffixMatchIsOnDotBoundary() {
        LoraConfig neox = LoraConfig.forModel("gpt_neox", 8, 16, null);
        assertTrue(neox.matches("gpt_neox.layers.0.attention.dense"));
        assertTrue(neox.matches("gpt_neox.layers.3.attention.query_key_value"));
        assertFalse(neox.matches("gpt_neox.layers.0.mlp.dense_h_to_4h"));
        assertFalse(neox.matches("gpt_neox.layers.0.mlp.dense_4h_to_h"));
        assertFalse(neox.matches("gpt_neox.layers.0.attention.xdense"), "suffix must start at a dot");
    }

    @Test
    void exactPathMatches() {
        LoraConfig c = LoraConfig.of(4, 8, List.of("model.layers.0.self_attn.q_proj"), false);
        assertTrue(c.matches("model.layers.0.self_attn.q_proj"));
        assertFalse(c.matches("model.layers.1.self_attn.q_proj"));
        assertTrue(LoraConfig.of(4, 8, List.of("lm_head"), false).matches("lm_head"));
    }

    @Test
    void gpt2TargetsHitAttentionButNotMlpProjection() {
        LoraConfig c = LoraConfig.forModel("gpt2", 8, 16, "tiny-gpt2");
        assertTrue(c.fanInFanOut());
        assertTrue(c.matches("transformer.h.0.attn.c_attn"));
        assertTrue(c.matches("transformer.h.11.attn.c_proj"));
        assertFalse(c.matches("transformer.h.0.mlp.c_proj"));
        assertFalse(c.matches("transformer.h.0.mlp.c_fc"));
    }

    @Test
    void regexTargetMustMatchWholePath() {
        LoraConfig c = new LoraConfig(8, 16, 0, null, ".*\\.layers\\.[01]\\.self_attn\\.(q|v)_proj", false, "none", false, null, null);
        assertTrue(c.matches("model.layers.0.self_attn.q_proj"));
        assertTrue(c.matches("model.layers.1.self_attn.v_proj"));
        assertFalse(c.matches("model.layers.2.self_attn.q_proj"));
        assertFalse(c.matches("model.layers.0.self_attn.k_proj"));
        assertFalse(c.matches("model.layers.0.self_attn.q_proj.extra"), "PEFT uses re.fullmatch");
    }

    @Test
    void defaultTargetsPerFamily() {
        assertEquals(List.of("q_proj", "k_proj", "v_proj", "o_proj"), LoraConfig.defaultTargets("llama"));
        assertEquals(List.of("q_proj", "k_proj", "v_proj", "o_proj"), LoraConfig.defaultTargets("mistral"));
        assertEquals(List.of("q_proj", "k_proj", "v_proj", "o_proj"), LoraConfig.defaultTargets("qwen2"));
        assertEquals(List.of("attn.c_attn", "attn.c_proj"), LoraConfig.defaultTargets("gpt2"));
        assertEquals(List.of("query_key_value", "dense"), LoraConfig.defaultTargets("gpt_neox"));
        assertEquals(List.of("q_proj", "k_proj", "v_proj", "out_proj"), LoraConfig.defaultTargets("opt"));
        JTuneException e = assertThrows(JTuneException.class, () -> LoraConfig.defaultTargets("bloom"));
        assertTrue(e.getMessage().contains("bloom"), e.getMessage());
    }

    @Test
    void scalingIsAlphaOverRankOrOverSqrtRankWithRslora() {
        assertEquals(2.0, LoraConfig.of(8, 16, List.of("q_proj"), false).scaling());
        LoraConfig rs = new LoraConfig(16, 16, 0, List.of("q_proj"), null, false, "none", true, null, null);
        assertEquals(4.0, rs.scaling(), 1e-12);
    }

    @Test
    void rejectsBiasOtherThanNone() {
        JTuneException e = assertThrows(JTuneException.class,
                () -> new LoraConfig(8, 16, 0, List.of("q_proj"), null, false, "lora_only", false, null, null));
        assertTrue(e.getMessage().contains("lora_only") && e.getMessage().contains("none"), e.getMessage());
        assertThrows(JTuneException.class,
                () -> new LoraConfig(8, 16, 0, List.of("q_proj"), null, false, "all", false, null, null));
    }

    @Test
    void rejectsBadFields() {
        assertThrows(JTuneException.class, () -> LoraConfig.of(0, 16, List.of("q_proj"), false));
        assertThrows(JTuneException.class, () -> LoraConfig.of(8, 0, List.of("q_proj"), false));
        assertThrows(JTuneException.class, () -> LoraConfig.of(8, 16, List.of(), false));
        assertThrows(JTuneException.class, () -> new LoraConfig(8, 16, 1.0, List.of("q"), null, false, "none", false, null, null));
        assertThrows(JTuneException.class, () -> new LoraConfig(8, 16, 0, null, null, false, "none", false, null, null));
        assertThrows(JTuneException.class, () -> new LoraConfig(8, 16, 0, null, "(", false, "none", false, null, null));
        JTuneException e = assertThrows(JTuneException.class,
                () -> new LoraConfig(8, 16, 0, List.of("q"), null, false, "none", false, null, "SEQ_CLS"));
        assertTrue(e.getMessage().contains("SEQ_CLS"), e.getMessage());
    }
}
