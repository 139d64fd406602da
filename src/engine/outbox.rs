//! Replies on their way to JS, as plain Rust values: the engine fills an `Outbox` while it
//! reads, and the JS boundary (`js`) turns it into one JS array once no engine state is
//! borrowed. Texts share one buffer, so a read of many replies allocates once.

use std::ops::Range;

use crate::command::Reply;
use crate::error::ErrorKind;

pub enum Item {
    Nil,
    Int(i64),
    Text(Range<usize>),
    Error(ErrorKind, Range<usize>),
    List(Vec<Option<Range<usize>>>),
}

#[derive(Default)]
pub struct Outbox {
    pub(super) text: String,
    pub(super) items: Vec<(u32, Item)>,
}

impl Outbox {
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    fn keep(&mut self, s: &str) -> Range<usize> {
        let start = self.text.len();
        self.text.push_str(s);
        start..self.text.len()
    }

    pub fn nil(&mut self, id: u32) {
        self.items.push((id, Item::Nil));
    }

    pub fn int(&mut self, id: u32, n: i64) {
        self.items.push((id, Item::Int(n)));
    }

    pub fn text(&mut self, id: u32, s: &str) {
        let r = self.keep(s);
        self.items.push((id, Item::Text(r)));
    }

    pub fn error(&mut self, id: u32, kind: ErrorKind, message: &str) {
        let r = self.keep(message);
        self.items.push((id, Item::Error(kind, r)));
    }

    /// A list of texts, `None` for a missing element.
    pub fn list<'a>(&mut self, id: u32, items: impl IntoIterator<Item = Option<&'a str>>) {
        let list = items
            .into_iter()
            .map(|item| item.map(|s| self.keep(s)))
            .collect();
        self.items.push((id, Item::List(list)));
    }

    /// A whole reply, kept as the reader keeps the replies it decodes: texts in the shared
    /// buffer, so it reaches JS as plain numbers and one slice of the delivery's text.
    pub fn reply(&mut self, id: u32, reply: Reply) {
        match reply {
            Reply::Nil => self.nil(id),
            Reply::Int(n) => self.int(id, n),
            Reply::Text(s) => self.text(id, &s),
            Reply::List(items) => self.list(id, items.iter().map(Option::as_deref)),
            Reply::Error(e) => self.error(id, e.kind, &e.message),
        }
    }
}

impl Outbox {
    /// Moves every reply of `other` to the end of this one.
    pub fn append(&mut self, other: Outbox) {
        if self.items.is_empty() {
            *self = other;
            return;
        }
        let shift = self.text.len();
        let moved = |r: Range<usize>| r.start + shift..r.end + shift;
        self.text.push_str(&other.text);
        for (id, item) in other.items {
            let item = match item {
                Item::Text(r) => Item::Text(moved(r)),
                Item::Error(kind, r) => Item::Error(kind, moved(r)),
                Item::List(list) => Item::List(list.into_iter().map(|r| r.map(moved)).collect()),
                other => other,
            };
            self.items.push((id, item));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_keeps_texts_apart() {
        let mut a = Outbox::default();
        a.text(1, "one");
        let mut b = Outbox::default();
        b.text(2, "two");
        b.list(3, [Some("x"), None]);
        a.append(b);
        let texts: Vec<String> = a
            .items
            .iter()
            .map(|(_, item)| match item {
                Item::Text(r) => a.text[r.clone()].to_string(),
                Item::List(l) => l
                    .iter()
                    .map(|r| r.clone().map_or("-".into(), |r| a.text[r].to_string()))
                    .collect::<Vec<_>>()
                    .join(","),
                _ => String::new(),
            })
            .collect();
        assert_eq!(texts, vec!["one", "two", "x,-"]);
        assert_eq!(
            a.items.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
    }
}
