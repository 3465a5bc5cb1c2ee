//! Word expansion on arbitrary text, in single- and multi-word modes and with both escape
//! characters: it must never panic.
#![no_main]

use kiln_dockerfile::shell::{EnvList, Lexer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &str| {
    let env: Vec<String> = ["A=a b", "EMPTY=", "PWD=/home", "X=*?[]"].map(String::from).to_vec();
    let env = EnvList::new(&env);
    for escape in ['\\', '`'] {
        let mut lexer = Lexer::new(escape);
        let _ = lexer.process_word(data, &env);
        let _ = lexer.process_words(data, &env);
        lexer.raw_quotes = true;
        lexer.skip_unset_env = true;
        let _ = lexer.process_words(data, &env);
    }
});
