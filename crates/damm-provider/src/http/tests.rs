//! The HTTP layer against a one-route server on 127.0.0.1.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

fn parse(failure: &Failure<'_>) -> Error {
    failure
        .error(ErrorKind::from_http_status(
            failure.status,
            failure.retry_after_seconds(),
        ))
        .with_message(failure.status_text())
}

/// A one-route HTTP server on 127.0.0.1 answering each request with the next of
/// `answers` (the last one repeats), recording each request's head.
async fn serve(answers: Vec<String>) -> (String, Arc<Mutex<Vec<String>>>, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v2", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let (seen2, count2) = (seen.clone(), count.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let n = count2.fetch_add(1, Ordering::SeqCst);
            let answer = answers[n.min(answers.len() - 1)].clone();
            let seen = seen2.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let read = socket.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..read]).into_owned();
                seen.lock().unwrap().push(head);
                let _ = socket.write_all(answer.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (url, seen, count)
}

fn answer(status: &str, headers: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nconnection: close\r\ncontent-length: {}\r\n{headers}\r\n{body}",
        body.len()
    )
}

fn client(url: &str) -> HttpClient {
    HttpClient::builder("demo", url, parse)
        .bearer(SecretString::from("sekrit-token"))
        .limits(vec![RateLimit::per_second(1000)])
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

#[tokio::test]
async fn bearer_path_query_and_json_reach_the_server() {
    let (url, seen, _) = serve(vec![answer("200 OK", "", r#"{"ok":1}"#)]).await;
    let v: Value = client(&url)
        .json(
            Operation::ListNodes,
            &Request::get("/servers").query("label", "damm-fleet=f 1"),
        )
        .await
        .unwrap();
    assert_eq!(v["ok"], 1);
    let head = seen.lock().unwrap()[0].clone();
    assert!(
        head.starts_with("GET /v2/servers?label=damm-fleet%3Df+1 "),
        "{head}"
    );
    assert!(
        head.to_ascii_lowercase()
            .contains("authorization: bearer sekrit-token"),
        "{head}"
    );
}

#[tokio::test]
async fn errors_carry_the_request_id_and_never_the_token() {
    let body = r#"{"echo":"Authorization: Bearer sekrit-token"}"#;
    let (url, _, count) = serve(vec![answer(
        "401 Unauthorized",
        "x-request-id: r-42\r\n",
        body,
    )])
    .await;
    let err = client(&url)
        .empty(Operation::ListNodes, &Request::get("/servers"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthenticated);
    assert_eq!(err.request_id(), Some("r-42"));
    assert!(!err.to_string().contains("sekrit"), "{err}");
    assert!(!format!("{err:?}").contains("sekrit"), "{err:?}");
    assert_eq!(count.load(Ordering::SeqCst), 1, "a 401 is not retried");
    assert!(!format!("{:?}", client(&url)).contains("sekrit"));
}

#[tokio::test(start_paused = true)]
async fn reads_retry_temporary_failures_and_creates_do_not() {
    let (url, _, count) = serve(vec![
        answer("503 Service Unavailable", "", "busy"),
        answer("200 OK", "", "{}"),
    ])
    .await;
    let c = client(&url);
    let _: Value = c
        .json(Operation::ListNodes, &Request::get("/x"))
        .await
        .unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 2);
    let (url, _, count) = serve(vec![answer("503 Service Unavailable", "", "busy")]).await;
    let err = client(&url)
        .empty(
            Operation::CreateIngressNode,
            &Request::post("/x")
                .json(serde_json::json!({}))
                .not_idempotent(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_refused_connection_is_a_temporary_unavailable() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/v2");
    let err = client(&url)
        .empty(Operation::ProbeHealth, &Request::get("/x"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.is_temporary());
    assert!(err.message().contains("cannot connect"), "{err}");
}

#[tokio::test]
async fn pages_by_number_and_by_cursor() {
    let page = |items: &str, next: &str| {
        answer(
            "200 OK",
            "",
            &format!(r#"{{"items":[{items}],"next":"{next}","total":3}}"#),
        )
    };
    let (url, seen, _) = serve(vec![page("1,2", "c2"), page("3", "")]).await;
    #[derive(serde::Deserialize)]
    struct P {
        items: Vec<u32>,
        next: String,
        total: u64,
    }
    let read = |p: P| Page {
        items: p.items,
        next: (!p.next.is_empty()).then_some(NextPage::Token(p.next)),
        total: Some(p.total),
    };
    let all = client(&url)
        .pages(
            Operation::ListNodes,
            Request::get("/things"),
            PageStyle::cursor(2),
            Paging::default(),
            read,
        )
        .await
        .unwrap();
    assert_eq!(all, [1, 2, 3]);
    let heads = seen.lock().unwrap().clone();
    assert!(
        heads[0].starts_with("GET /v2/things?per_page=2 "),
        "{}",
        heads[0]
    );
    assert!(
        heads[1].starts_with("GET /v2/things?per_page=2&cursor=c2 "),
        "{}",
        heads[1]
    );
}

#[test]
fn bad_base_urls_are_refused_by_name() {
    let err = HttpClient::builder("demo", "not a url", parse)
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.message().contains("not a url"), "{err}");
    let err = HttpClient::builder("demo", "ftp://x/", parse)
        .build()
        .unwrap_err();
    assert!(err.message().contains("http(s)"), "{err}");
}

#[test]
fn null_lists_read_as_empty() {
    #[derive(serde::Deserialize)]
    struct L {
        #[serde(default, deserialize_with = "null_as_empty")]
        items: Vec<u32>,
    }
    for (text, len) in [
        (r#"{"items":null}"#, 0),
        ("{}", 0),
        (r#"{"items":[1,2]}"#, 2),
    ] {
        let l: L = serde_json::from_str(text).unwrap();
        assert_eq!(l.items.len(), len, "{text}");
    }
}

#[test]
fn paths_keep_each_segment_whole_and_base_urls_are_checked() {
    assert_eq!(path_of(&["instances", "a/b"]), "/instances/a%2Fb");
    assert_eq!(path_of(&["x", "..", "100%"]), "/x/100%25");
    assert_eq!(path_of(&["tags", "damm-fleet:f"]), "/tags/damm-fleet:f");
    assert!(check_base_url("http://127.0.0.1:9/v2").is_ok());
    assert!(
        check_base_url("not a url")
            .unwrap_err()
            .contains("`not a url` is not a URL")
    );
    assert!(check_base_url("ftp://x/").unwrap_err().contains("http(s)"));
}

#[tokio::test]
async fn an_encoded_segment_reaches_the_server_encoded() {
    let (url, seen, _) = serve(vec![answer("200 OK", "", "{}")]).await;
    let _: Value = client(&url)
        .json(
            Operation::ListNodes,
            &Request::get(path_of(&["instances", "a/b"])),
        )
        .await
        .unwrap();
    let head = seen.lock().unwrap()[0].clone();
    assert!(head.starts_with("GET /v2/instances/a%2Fb "), "{head}");
}

#[test]
fn rate_limit_headers_and_request_ids() {
    let map = header_map(&[
        ("retry-after", b"7"),
        ("ratelimit-reset", b"1"),
        ("cf-ray", b"8a-AMS"),
    ]);
    assert_eq!(retry_after_seconds(&map), Some(Duration::from_secs(7)));
    assert_eq!(
        reset_at(&map, "ratelimit-reset", SystemTime::now()),
        Some(Duration::from_secs(1)),
        "a reset in the past waits a second"
    );
    assert_eq!(request_id(&map).as_deref(), Some("8a-AMS"));
    let err = parse_fuzzed_answer(parse, 429, &[("retry-after", b"3"), ("bad\n", b"x")], b"");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
    assert_eq!(
        (err.provider(), err.operation()),
        ("fuzz", Operation::ListNodes)
    );
    assert_eq!(excerpt("a\nb", 10), "a b");
    assert_eq!(
        reset_at(
            &header_map(&[("r", b"99999999999999999999")]),
            "r",
            SystemTime::now()
        ),
        None
    );
}
