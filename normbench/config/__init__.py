"""The config's rules before a run: each key's rule (:mod:`.rules`), the checks that turn bad
input into one line (:mod:`.checks`), and the presets' norm defaults (:mod:`.presets`)."""
