package org.jtune.infer;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.file.Path;
import org.jtune.config.HfConfig;
import org.jtune.io.safetensors.DType;
import org.jtune.testutil.Shared;
import org.junit.jupiter.api.Test;

class EngineTest {
    private static DType cacheFor(String json, int headDim) {
        return Engine.defaultKvCache(HfConfig.parse(Path.of("config.json"), json), headDim);
    }

    /** bf16 only for models published in bfloat16, under either key transformers writes, and only for even heads. */
    @Test
    void defaultKvCacheFollowsThePublishedDtype() {
        assertEquals(DType.BF16, cacheFor("{\"torch_dtype\": \"bfloat16\"}", 64));
        assertEquals(DType.BF16, cacheFor("{\"dtype\": \"bfloat16\"}", 64));
        assertEquals(DType.F32, cacheFor("{\"torch_dtype\": \"bfloat16\"}", 63));
        assertEquals(DType.F32, cacheFor("{\"torch_dtype\": \"float16\"}", 64));
        assertEquals(DType.F32, cacheFor("{\"torch_dtype\": \"float32\"}", 64));
        assertEquals(DType.F32, cacheFor("{}", 64));
    }

    @Test
    void sessionsGetTheModelsDefaultCache() {
        try (Engine bf16 = Engine.load(Shared.path("models/jtune-ref-llama-13m"));
             Session s = bf16.newSession(32);
             Session f32 = bf16.newSession(32, DType.F32)) {
            assertEquals(DType.BF16, bf16.defaultKvCache());
            assertEquals(DType.BF16, s.kvCache());
            assertEquals(DType.F32, f32.kvCache());
        }
        try (Engine f32 = Engine.load(Shared.path("models/tiny-llama"));
             Session s = f32.newSession(32)) {
            assertEquals(DType.F32, s.kvCache());
        }
    }
}
