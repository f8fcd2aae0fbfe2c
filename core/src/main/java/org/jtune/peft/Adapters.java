package org.jtune.peft;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Path;
import org.jtune.JTuneException;

/** Reads any PEFT adapter directory jtune supports, choosing the kind by {@code peft_type}. */
public final class Adapters {
    private Adapters() {}

    /** Loads {@code dir} as a {@link LoraAdapter} or {@link PrefixAdapter}; other PEFT types fail with a message. */
    public static Adapter load(Path dir) {
        ObjectNode config = AdapterFiles.readConfig(dir);
        String type = AdapterFiles.peftType(config, dir);
        return switch (type) {
            case LoraAdapter.PEFT_TYPE -> LoraAdapter.load(dir);
            case PrefixAdapter.PEFT_TYPE -> PrefixAdapter.load(dir);
            default -> throw new JTuneException(displayName(type) + " adapters are not supported (peft_type \"" + type + "\" in "
                    + dir.resolve(AdapterFiles.CONFIG) + "); jtune reads " + LoraAdapter.PEFT_TYPE + " and " + PrefixAdapter.PEFT_TYPE);
        };
    }

    private static String displayName(String type) {
        return type.isBlank() ? "untyped" : type;
    }
}
