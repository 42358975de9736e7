//! ECS's paging for the List calls: `maxResults` and an opaque `nextToken`.
//!
//! A listing is a sequence ordered by a stable key (a name, an id, or a
//! creation time with an id). A page holds at most `maxResults` items; its
//! token names the last key returned, so the next page starts strictly
//! after that key in the listing's order. Items inserted or deleted between
//! two calls therefore never make a page repeat or skip an item that was
//! there all along (an item inserted before the cursor is simply not seen).
//!
//! The token is base64url (no padding) of `<listing>\n<key>`: the listing's
//! name keeps a token of one List call from being read by another. A token
//! that does not decode, or names another listing, is `InvalidArgument`. The
//! last page has no token (the empty string on the wire).
//!
//! Pure: no I/O, no clock.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// The largest `maxResults` ECS accepts on its List calls.
pub const MAX_RESULTS: i32 = 100;
/// ECS's default page for most List calls.
pub const DEFAULT_PAGE: usize = 100;
/// ECS's default page for ListServices.
pub const DEFAULT_SERVICES_PAGE: usize = 10;

/// Why a page request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    /// `maxResults` outside 1–100.
    #[error("maxResults must be between 1 and {MAX_RESULTS}, not {0}")]
    MaxResults(i32),
    /// A token this listing did not issue.
    #[error("Invalid nextToken: not a token this listing issued")]
    Token,
}

impl PageError {
    /// The request field at fault (ECS's names).
    pub fn field(&self) -> &'static str {
        match self {
            PageError::MaxResults(_) => "maxResults",
            PageError::Token => "nextToken",
        }
    }

    /// The message without the field's name (the API prefixes it).
    pub fn message(&self) -> String {
        match self {
            PageError::MaxResults(n) => format!("must be between 1 and {MAX_RESULTS}, not {n}"),
            PageError::Token => "invalid: not a token this listing issued".to_owned(),
        }
    }
}

/// The order a listing walks its keys in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Ascending,
    Descending,
}

/// One page wanted of one listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    listing: &'static str,
    limit: usize,
    after: Option<String>,
}

impl PageRequest {
    /// Reads a request's `maxResults` (0: `default`) and `nextToken` (empty:
    /// the first page) for `listing`.
    pub fn parse(
        listing: &'static str,
        max_results: i32,
        next_token: &str,
        default: usize,
    ) -> Result<Self, PageError> {
        let limit = match max_results {
            0 => default,
            n @ 1..=MAX_RESULTS => n as usize,
            n => return Err(PageError::MaxResults(n)),
        };
        let after = match next_token {
            "" => None,
            t => Some(decode_token(listing, t)?),
        };
        Ok(Self {
            listing,
            limit,
            after,
        })
    }

    pub fn limit(&self) -> usize {
        self.limit
    }
}

/// Items of one page and the token of the next (empty on the last page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_token: String,
}

/// The token that resumes `listing` after `key`.
pub fn encode_token(listing: &str, key: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{listing}\n{key}"))
}

/// The key a `next_token` of `listing` resumes after (`None` for the
/// empty token: the first page), for listings that page themselves (the
/// audit log reads the store backwards from it).
pub fn resume_key(listing: &str, next_token: &str) -> Result<Option<String>, PageError> {
    match next_token.trim() {
        "" => Ok(None),
        t => decode_token(listing, t).map(Some),
    }
}

fn decode_token(listing: &str, token: &str) -> Result<String, PageError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(token.trim())
        .map_err(|_| PageError::Token)?;
    let text = String::from_utf8(bytes).map_err(|_| PageError::Token)?;
    let (name, key) = text.split_once('\n').ok_or(PageError::Token)?;
    if name != listing {
        return Err(PageError::Token);
    }
    Ok(key.to_owned())
}

/// A key that sorts by time, then by id: the time zero-padded (so that
/// byte order is numeric order; times before 1970 sort first), a NUL,
/// then the id.
pub fn time_key(millis: i64, id: &str) -> String {
    format!("{:020}\0{id}", millis.max(0))
}

/// The page `req` asks for of `items`, each identified by `key` (unique
/// within the listing). Items are ordered by key here, in `order`, whatever
/// order they come in.
pub fn paginate<T>(
    items: Vec<T>,
    key: impl Fn(&T) -> String,
    order: Order,
    req: &PageRequest,
) -> Page<T> {
    let mut keyed: Vec<(String, T)> = items.into_iter().map(|t| (key(&t), t)).collect();
    keyed.sort_by(|a, b| match order {
        Order::Ascending => a.0.cmp(&b.0),
        Order::Descending => b.0.cmp(&a.0),
    });
    let rest = keyed
        .into_iter()
        .filter(|(k, _)| match (&req.after, order) {
            (None, _) => true,
            (Some(after), Order::Ascending) => k.as_str() > after.as_str(),
            (Some(after), Order::Descending) => k.as_str() < after.as_str(),
        });
    let mut items = Vec::with_capacity(req.limit.min(MAX_RESULTS as usize));
    let mut last_key = None;
    let mut more = false;
    for (k, t) in rest {
        if items.len() == req.limit {
            more = true;
            break;
        }
        items.push(t);
        last_key = Some(k);
    }
    let next_token = match (more, last_key) {
        (true, Some(k)) => encode_token(req.listing, &k),
        _ => String::new(),
    };
    Page { items, next_token }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("s{i:03}")).collect()
    }

    fn all_pages(items: &[String], limit: i32) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let req = PageRequest::parse("t", limit, &token, DEFAULT_PAGE).unwrap();
            let page = paginate(items.to_vec(), |s| s.clone(), Order::Ascending, &req);
            out.push(page.items);
            if page.next_token.is_empty() {
                return out;
            }
            token = page.next_token;
        }
    }

    #[test]
    fn max_results_bounds() {
        assert_eq!(
            PageRequest::parse("t", 0, "", 10).unwrap().limit(),
            10,
            "0 is the default"
        );
        assert_eq!(PageRequest::parse("t", 1, "", 10).unwrap().limit(), 1);
        assert_eq!(PageRequest::parse("t", 100, "", 10).unwrap().limit(), 100);
        for bad in [-1, 101, i32::MAX, i32::MIN] {
            let e = PageRequest::parse("t", bad, "", 10).unwrap_err();
            assert_eq!(e, PageError::MaxResults(bad));
            assert_eq!(e.field(), "maxResults");
            assert!(e.to_string().contains("between 1 and 100"), "{e}");
        }
    }

    #[test]
    fn bad_tokens_are_refused() {
        let other = encode_token("other", "k");
        for bad in ["!!!", "bm8gbmV3bGluZQ", other.as_str(), "%%", "/w"] {
            let e = PageRequest::parse("t", 0, bad, 10).unwrap_err();
            assert_eq!(e, PageError::Token, "{bad}");
            assert_eq!(e.field(), "nextToken");
        }
        let good = encode_token("t", "s005");
        assert!(PageRequest::parse("t", 0, &good, 10).is_ok());
    }

    #[test]
    fn exact_multiples_end_without_a_token() {
        let items = names(10);
        assert_eq!(all_pages(&items, 5).len(), 2);
        assert_eq!(all_pages(&items, 10).len(), 1);
        assert_eq!(all_pages(&items, 3).len(), 4);
        assert_eq!(all_pages(&[], 3), vec![Vec::<String>::new()]);
        let flat: Vec<String> = all_pages(&items, 3).concat();
        assert_eq!(flat, items);
    }

    #[test]
    fn unsorted_input_is_paged_in_key_order() {
        let mut items = names(7);
        items.reverse();
        let flat: Vec<String> = all_pages(&items, 2).concat();
        assert_eq!(flat, names(7));
    }

    #[test]
    fn stable_under_inserts_and_deletes_between_pages() {
        let mut items = names(10);
        let req = PageRequest::parse("t", 4, "", DEFAULT_PAGE).unwrap();
        let first = paginate(items.clone(), |s| s.clone(), Order::Ascending, &req);
        assert_eq!(first.items, names(4));
        // Between the calls: the last item returned and a later one are
        // deleted, and items are inserted before and after the cursor.
        items.retain(|s| s != "s003" && s != "s006");
        items.push("s0025".into());
        items.push("s0075".into());
        let req = PageRequest::parse("t", 4, &first.next_token, DEFAULT_PAGE).unwrap();
        let second = paginate(items.clone(), |s| s.clone(), Order::Ascending, &req);
        assert_eq!(second.items, vec!["s004", "s005", "s007", "s0075"]);
        let req = PageRequest::parse("t", 4, &second.next_token, DEFAULT_PAGE).unwrap();
        let third = paginate(items, |s| s.clone(), Order::Ascending, &req);
        assert_eq!(third.items, vec!["s008", "s009"]);
        assert!(third.next_token.is_empty());
    }

    #[test]
    fn descending_pages_walk_down() {
        let items: Vec<(i64, String)> = (0..5).map(|i| (i * 10, format!("d{i}"))).collect();
        let key = |t: &(i64, String)| time_key(t.0, &t.1);
        let req = PageRequest::parse("d", 2, "", DEFAULT_PAGE).unwrap();
        let p1 = paginate(items.clone(), key, Order::Descending, &req);
        assert_eq!(p1.items.iter().map(|t| t.0).collect::<Vec<_>>(), [40, 30]);
        let req = PageRequest::parse("d", 2, &p1.next_token, DEFAULT_PAGE).unwrap();
        let p2 = paginate(items.clone(), key, Order::Descending, &req);
        assert_eq!(p2.items.iter().map(|t| t.0).collect::<Vec<_>>(), [20, 10]);
        let req = PageRequest::parse("d", 2, &p2.next_token, DEFAULT_PAGE).unwrap();
        let p3 = paginate(items, key, Order::Descending, &req);
        assert_eq!(p3.items.iter().map(|t| t.0).collect::<Vec<_>>(), [0]);
        assert!(p3.next_token.is_empty());
    }

    #[test]
    fn resume_keys_round_trip_and_refuse_other_listings() {
        assert_eq!(resume_key("audit", "").unwrap(), None);
        let t = encode_token("audit", "0001");
        assert_eq!(resume_key("audit", &t).unwrap().as_deref(), Some("0001"));
        assert_eq!(resume_key("tasks", &t), Err(PageError::Token));
    }

    #[test]
    fn time_keys_sort_numerically() {
        assert!(time_key(9, "b") < time_key(10, "a"));
        assert!(time_key(10, "a") < time_key(10, "b"));
        assert!(time_key(-5, "z") < time_key(1, "a"));
    }
}
