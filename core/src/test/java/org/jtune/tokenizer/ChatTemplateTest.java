package org.jtune.tokenizer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.jtune.JTuneException;
import org.jtune.testutil.Shared;
import org.junit.jupiter.api.Test;

/**
 * Chat templates must render byte-for-byte like transformers' apply_chat_template. The expected
 * strings were produced by jinja2 3.1.6 with transformers' environment
 * (ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True), raise_exception global),
 * rendering the same template files with the same messages.
 */
class ChatTemplateTest {

    private static final ChatMessage SYSTEM = new ChatMessage("system", "You are a friendly chatbot.");
    private static final List<ChatMessage> CONVERSATION = List.of(
            SYSTEM,
            new ChatMessage("user", "Hello!"),
            new ChatMessage("assistant", "Hi there. How can I help?"),
            new ChatMessage("user", "Tell me a joke."));
    private static final List<ChatMessage> NO_SYSTEM = CONVERSATION.subList(1, 4);

    private static ChatTemplate fromConfig(String configFile) {
        try (Tokenizer tok = Tokenizer.fromFiles(
                Shared.path("tokenizers/llama2-tinyllama/tokenizer.json"), Shared.path(configFile))) {
            return tok.chatTemplate().orElseThrow();
        }
    }

    @Test
    void tinyLlamaZephyrTemplateMatchesTransformers() {
        ChatTemplate t = fromConfig("tokenizers/llama2-tinyllama/tokenizer_config.json");
        assertEquals("<|system|>\nYou are a friendly chatbot.</s>\n<|user|>\nHello!</s>\n"
                + "<|assistant|>\nHi there. How can I help?</s>\n<|user|>\nTell me a joke.</s>\n"
                + "<|assistant|>\n", t.render(CONVERSATION, true));
        assertEquals("<|system|>\nYou are a friendly chatbot.</s>\n<|user|>\nHello!</s>\n"
                + "<|assistant|>\nHi there. How can I help?</s>\n<|user|>\nTell me a joke.</s>\n",
                t.render(CONVERSATION, false));
    }

    @Test
    void qwenChatMlTemplateUsesGivenOrDefaultSystemPrompt() {
        ChatTemplate t = fromConfig("tokenizers/qwen2.5/tokenizer_config.json");
        assertEquals("<|im_start|>system\nYou are a friendly chatbot.<|im_end|>\n"
                + "<|im_start|>user\nHello!<|im_end|>\n"
                + "<|im_start|>assistant\nHi there. How can I help?<|im_end|>\n"
                + "<|im_start|>user\nTell me a joke.<|im_end|>\n<|im_start|>assistant\n",
                t.render(CONVERSATION, true));
        String defaultSystem = "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a"
                + " helpful assistant.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n"
                + "<|im_start|>assistant\nHi there. How can I help?<|im_end|>\n"
                + "<|im_start|>user\nTell me a joke.<|im_end|>\n";
        assertEquals(defaultSystem + "<|im_start|>assistant\n", t.render(NO_SYSTEM, true));
        assertEquals(defaultSystem, t.render(NO_SYSTEM, false));
    }

    @Test
    void llama3TemplateTrimsContentAndStartsWithBos() {
        // The llama3-8b-base config has no template; the lenml one carries the Instruct template.
        ChatTemplate t = fromConfig("tokenizers/llama3/tokenizer_config.lenml-npm.json");
        List<ChatMessage> msgs = List.of(new ChatMessage("system", "  Be brief. "),
                NO_SYSTEM.get(0), NO_SYSTEM.get(1), NO_SYSTEM.get(2));
        assertEquals("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
                + "<|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>"
                + "<|start_header_id|>assistant<|end_header_id|>\n\nHi there. How can I help?<|eot_id|>"
                + "<|start_header_id|>user<|end_header_id|>\n\nTell me a joke.<|eot_id|>"
                + "<|start_header_id|>assistant<|end_header_id|>\n\n", t.render(msgs, true));
    }

    @Test
    void mistralTemplateFoldsSystemIntoFirstUserTurn() {
        ChatTemplate t = ChatTemplate.of(Tokenizer.readText(
                Shared.path("tokenizers/mistral-7b-v0.1/chat_templates/v1_spm.jinja")), "<s>", "</s>");
        assertEquals("<s> [INST] You are a friendly chatbot.\n\nHello! [/INST] Hi there. How can I"
                + " help?</s> [INST] Tell me a joke. [/INST]", t.render(CONVERSATION, false));
        assertEquals("<s> [INST] Hello! [/INST] Hi there. How can I help?</s> [INST] Tell me a joke."
                + " [/INST]", t.render(NO_SYSTEM, true));
    }

    @Test
    void mistralTemplateRaisesOnConversationStartingWithAssistant() {
        ChatTemplate t = ChatTemplate.of(Tokenizer.readText(
                Shared.path("tokenizers/mistral-7b-v0.1/chat_templates/v1_spm.jinja")), "<s>", "</s>");
        JTuneException e = assertThrows(JTuneException.class, () -> t.render(List.of(
                new ChatMessage("assistant", "x"), new ChatMessage("user", "y")), false));
        assertTrue(e.getMessage().contains(
                "Conversation must start with a user message, got assistant."), e.getMessage());
    }

    @Test
    void pythonStringMethodsWork() {
        String src = "{% for m in messages %}[{{ m['content'].strip() }}|{{ m['content'].rstrip() }}|"
                + "{{ m['content'].lstrip() }}|{{ m['role'].upper() }}"
                + "{% if m['content'].startswith(' ') %}!{% endif %}]\n{% endfor %}\n";
        ChatTemplate t = ChatTemplate.of(src, null, null);
        assertEquals("[Be brief.|  Be brief.|Be brief. |SYSTEM!]\n",
                t.render(List.of(new ChatMessage("system", "  Be brief. ")), false));
    }

    @Test
    void missingTokensRenderAsEmptyStrings() {
        ChatTemplate t = ChatTemplate.of("{{ bos_token }}|{{ eos_token }}", null, null);
        assertEquals("|", t.render(List.of(), false));
    }

    @Test
    void literalTextThatLooksLikeAMethodCallIsNotRewritten() {
        ChatTemplate t = ChatTemplate.of("call x.upper() {{ 'a'.upper() }}", null, null);
        assertEquals("call x.upper() A", t.render(List.of(), false));
    }

    @Test
    void whitespaceControlMatchesJinja2WithTrimAndLstripBlocks() {
        // Expected values rendered by jinja2 3.1.6 with trim_blocks=True, lstrip_blocks=True.
        assertEquals("  xy  \nz", ChatTemplate.of("  {% if true %}\n  x  {{- 'y' -}}  \n{# c #}\n"
                + "  {%+ if true +%}\nz\n{%- endif %}\n{% endif %}\n", null, null).render(List.of(), false));
        assertEquals("ab }}\n1,2,end\n", ChatTemplate.of("a\n    {#- note -#}\n  b {{ '}}' }}\n"
                + "\t{% for i in [1, 2] %}\n{{ i }},{% endfor %}\nend\n\n", null, null)
                .render(List.of(), false));
        assertEquals("{{ keep }}   q yes !", ChatTemplate.of("{% raw %}{{ keep }}  {% endraw %}\n"
                + " {{ 'q' }}  {%- if false %}no{% else %} yes {% endif -%}  \n!", null, null)
                .render(List.of(), false));
    }

    @Test
    void strftimeNowFormatsLikePython() {
        java.time.LocalDateTime t = java.time.LocalDateTime.of(2024, 7, 5, 9, 3, 1);
        assertEquals("05 Jul 2024", ChatTemplate.strftime("%d %b %Y", t));
        assertEquals("Friday, July 05 09:03:01 100% %Q", ChatTemplate.strftime("%A, %B %d %H:%M:%S 100%% %Q", t));
        String rendered = ChatTemplate.of("{{ strftime_now('%Y') }}", null, null).render(List.of(), false);
        assertEquals(String.valueOf(java.time.LocalDate.now().getYear()), rendered);
    }
}
