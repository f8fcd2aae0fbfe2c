package org.jtune.infer;

import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;
import org.jtune.JTuneException;
import org.jtune.tokenizer.ChatMessage;
import org.jtune.tokenizer.ChatTemplate;
import org.jtune.tokenizer.Tokenizer;

/**
 * A multi-turn conversation rendered with the model's chat template. Each turn renders the whole
 * conversation, keeps the longest prefix of tokens the session already holds (so earlier turns are
 * never recomputed) and feeds only the rest. Like llama.cpp, a BOS token is put in front when the
 * tokenizer normally adds one and the template does not.
 */
public final class ChatSession {
    private final Engine engine;
    private final Session session;
    private final ChatTemplate template;
    private final Tokenizer tokenizer;
    private final List<ChatMessage> messages = new ArrayList<>();

    public ChatSession(Engine engine, Session session, String systemPrompt) {
        this.engine = engine;
        this.session = session;
        this.tokenizer = engine.requireTokenizer();
        this.template = tokenizer.chatTemplate().orElseThrow(() -> new JTuneException(
                "model " + engine.dir() + " has no chat_template in tokenizer_config.json; use `jtune generate` instead"));
        if (systemPrompt != null && !systemPrompt.isBlank()) {
            messages.add(new ChatMessage("system", systemPrompt));
        }
    }

    public List<ChatMessage> messages() {
        return List.copyOf(messages);
    }

    public Session session() {
        return session;
    }

    /** Adds the user's message, generates the assistant's reply (streamed to onText) and remembers both. */
    public GenerationResult reply(String userText, SamplingParams params, Consumer<String> onText) {
        messages.add(new ChatMessage("user", userText));
        int[] ids;
        try {
            ids = encode(template.render(messages, true));
        } catch (RuntimeException e) {
            messages.removeLast();
            throw e;
        }
        if (ids.length >= session.maxSeq()) {
            messages.removeLast();
            throw new Session.ContextOverflowException(0, ids.length, session.maxSeq());
        }
        int common = 0;
        int held = session.length();
        while (common < held && common < ids.length - 1 && session.token(common) == ids[common]) {
            common++;
        }
        session.rewind(common);
        int[] rest = java.util.Arrays.copyOfRange(ids, common, ids.length);
        if (rest.length > session.remaining()) {
            messages.removeLast();
            throw new Session.ContextOverflowException(common, rest.length, session.maxSeq());
        }
        GenerationResult r = engine.generate(session, rest, params, onText);
        messages.add(new ChatMessage("assistant", r.text()));
        return r;
    }

    private int[] encode(String rendered) {
        int[] ids = tokenizer.encode(rendered, false);
        var bos = tokenizer.bosTokenId();
        boolean addsBos = bos.isPresent() && startsWith(tokenizer.encode("", true), bos.getAsInt());
        if (addsBos && !startsWith(ids, bos.getAsInt())) {
            int[] withBos = new int[ids.length + 1];
            withBos[0] = bos.getAsInt();
            System.arraycopy(ids, 0, withBos, 1, ids.length);
            return withBos;
        }
        return ids;
    }

    private static boolean startsWith(int[] ids, int id) {
        return ids.length > 0 && ids[0] == id;
    }
}
