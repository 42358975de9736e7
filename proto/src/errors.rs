//! Rendering an error with its sources on one line, for logs and for
//! messages a person reads (`berthctl`, `berth-agent join`).

/// `error: source: source…`, skipping sources whose text repeats the last.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut last = out.clone();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !last.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        last = text;
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct E(&'static str, Option<Box<E>>);

    impl std::fmt::Display for E {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for E {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    fn chain(links: &[&'static str]) -> E {
        links
            .iter()
            .rev()
            .fold(None, |source, text| Some(E(text, source.map(Box::new))))
            .unwrap()
    }

    #[test]
    fn joins_the_sources() {
        assert_eq!(error_chain(&chain(&["a"])), "a");
        assert_eq!(
            error_chain(&chain(&["connect", "tls", "bad certificate"])),
            "connect: tls: bad certificate"
        );
    }

    #[test]
    fn skips_a_source_the_last_text_already_says() {
        assert_eq!(
            error_chain(&chain(&[
                "transport error: refused",
                "refused",
                "os error 111"
            ])),
            "transport error: refused: os error 111"
        );
    }
}
