package org.jtune.tokenizer;

import java.util.Objects;

/**
 * One turn of a conversation as a chat template sees it: {@code role} is "system", "user",
 * "assistant" (or whatever the template accepts) and {@code content} is plain text. Templates see
 * it as the dict {@code {'role': ..., 'content': ...}}, exactly like HF's {@code messages}.
 */
public record ChatMessage(String role, String content) {
    public ChatMessage {
        Objects.requireNonNull(role, "role");
        Objects.requireNonNull(content, "content");
    }
}
