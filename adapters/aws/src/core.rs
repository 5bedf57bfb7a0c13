//! The EC2 and CloudFront client set-up and the one place API failures become [`Error`]s.

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_sdk_ec2::config::retry::RetryConfig;
use aws_sdk_ec2::config::timeout::TimeoutConfig;
use aws_sdk_ec2::config::{Credentials, Region as AwsRegion};
use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use damm_provider::{Error, ErrorKind, ExposeSecret, Operation};

use crate::config::AwsConfig;

/// EC2 has no `Retry-After`; a throttled call waits at least this long (its buckets
/// refill at several requests per second) on top of the shared backoff.
pub(crate) const THROTTLE_PAUSE: Duration = Duration::from_secs(1);

/// The region the shared SDK configuration is loaded with; every client overrides it
/// with the region it talks to. Setting it keeps the loader from asking the instance
/// metadata service.
const LOADER_REGION: &str = "us-east-1";

/// Loads the SDK configuration shared by every regional client: credentials from the
/// settings or the standard chain, the endpoint override, the request timeout, and the
/// SDK's own retries switched off (`damm_provider::retry` is the one retry mechanism).
pub(crate) async fn load_sdk_config(settings: &AwsConfig) -> aws_config::SdkConfig {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(settings.request_timeout())
        .operation_attempt_timeout(settings.request_timeout())
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(AwsRegion::new(LOADER_REGION))
        .retry_config(RetryConfig::disabled())
        .timeout_config(timeouts)
        .app_name(
            aws_config::AppName::new(format!("damm-{}", env!("CARGO_PKG_VERSION")))
                .expect("a valid app name"),
        );
    if let Some(url) = &settings.endpoint_url {
        loader = loader.endpoint_url(url.trim_end_matches('/'));
    }
    if let (Some(id), Some(secret)) = (&settings.access_key_id, &settings.secret_access_key) {
        let credentials = Credentials::new(
            id.expose_secret(),
            secret.expose_secret(),
            settings
                .session_token
                .as_ref()
                .map(|t| t.expose_secret().to_owned()),
            None,
            "damm-config",
        );
        loader = loader.credentials_provider(credentials);
    }
    loader.load().await
}

/// An EC2 client for one AWS region on the shared configuration (same HTTP connection
/// pool, same credentials cache).
pub(crate) fn regional_client(shared: &aws_config::SdkConfig, region: &str) -> aws_sdk_ec2::Client {
    let config = aws_sdk_ec2::config::Builder::from(shared)
        .region(AwsRegion::new(region.to_owned()))
        .build();
    aws_sdk_ec2::Client::from_conf(config)
}

/// CloudFront is global: its API lives in us-east-1, and requests are signed for it.
const CLOUDFRONT_REGION: &str = "us-east-1";

/// The CloudFront client, on the shared configuration (its endpoint override included).
pub(crate) fn cloudfront_client(shared: &aws_config::SdkConfig) -> aws_sdk_cloudfront::Client {
    let config = aws_sdk_cloudfront::config::Builder::from(shared)
        .region(aws_sdk_cloudfront::config::Region::new(CLOUDFRONT_REGION))
        .build();
    aws_sdk_cloudfront::Client::from_conf(config)
}

/// What a CloudFront error code means to DAMM; codes it shares with EC2 (throttling,
/// credentials, internal errors) and the HTTP status go through [`classify`].
pub(crate) fn classify_cloudfront(code: Option<&str>, status: u16) -> (ErrorKind, bool) {
    let text = code.unwrap_or("");
    let kind = match text {
        "NoSuchDistribution" | "NoSuchResource" => ErrorKind::NotFound,
        "AccessDenied" => ErrorKind::Unauthenticated,
        "DistributionAlreadyExists"
        | "DistributionNotDisabled"
        | "PreconditionFailed"
        | "InvalidIfMatchVersion"
        | "CNAMEAlreadyExists"
        | "ResourceInUse" => ErrorKind::Conflict,
        "InvalidClientTokenId" => ErrorKind::Unauthenticated,
        c if c.starts_with("TooMany") => ErrorKind::QuotaExceeded,
        // A configuration CloudFront refuses, or one naming a policy or origin it lacks.
        c if c.starts_with("Invalid")
            || c.starts_with("Illegal")
            || c.starts_with("NoSuch")
            || c.starts_with("TrustedSigner")
            || c.starts_with("TrustedKeyGroup")
            || c == "InconsistentQuantities"
            || c == "MissingBody" =>
        {
            ErrorKind::InvalidInput
        }
        _ => return classify(code, status),
    };
    // A disable still deploying, or a change between read and write (the ETag moved):
    // the next attempt may well succeed.
    let temporary = kind.is_temporary_by_default()
        || status >= 500
        || matches!(text, "DistributionNotDisabled" | "PreconditionFailed");
    (kind, temporary)
}

/// What an EC2 error code (or, without one, the HTTP status) means to DAMM, and whether
/// trying again later may help.
pub(crate) fn classify(code: Option<&str>, status: u16) -> (ErrorKind, bool) {
    let kind = match code.unwrap_or("") {
        "InvalidInstanceID.NotFound"
        | "InvalidInstanceID.Malformed"
        | "InvalidAllocationID.NotFound"
        | "InvalidAssociationID.NotFound"
        | "InvalidAddress.NotFound"
        | "InvalidAddressID.NotFound" => ErrorKind::NotFound,
        "RequestLimitExceeded" | "Throttling" | "ThrottlingException" => ErrorKind::RateLimited {
            retry_after: Some(THROTTLE_PAUSE),
        },
        "AuthFailure"
        | "UnauthorizedOperation"
        | "InvalidClientTokenId"
        | "SignatureDoesNotMatch"
        | "OptInRequired"
        | "Blocked"
        | "ExpiredToken"
        | "RequestExpired" => ErrorKind::Unauthenticated,
        "IdempotentParameterMismatch"
        | "IncorrectInstanceState"
        | "IncorrectState"
        | "InvalidIPAddress.InUse"
        | "Resource.AlreadyAssociated" => ErrorKind::Conflict,
        "InstanceLimitExceeded"
        | "AddressLimitExceeded"
        | "VcpuLimitExceeded"
        | "MaxSpotInstanceCountExceeded"
        | "ResourceLimitExceeded" => ErrorKind::QuotaExceeded,
        "InsufficientInstanceCapacity"
        | "InsufficientAddressCapacity"
        | "InsufficientCapacity"
        | "InternalError"
        | "InternalFailure"
        | "ServiceUnavailable"
        | "Unavailable" => ErrorKind::Unavailable,
        code if code.starts_with("InvalidParameter")
            || code.starts_with("InvalidAMIID")
            || code.starts_with("InvalidGroup")
            || code.starts_with("InvalidSubnet")
            || code == "MissingParameter"
            || code == "InvalidInstanceType"
            || code == "Unsupported" =>
        {
            ErrorKind::InvalidInput
        }
        _ => ErrorKind::from_http_status(status, (status == 429).then_some(THROTTLE_PAUSE)),
    };
    // A 5xx is AWS having a bad moment, whatever its code; capacity comes back too.
    let temporary = kind.is_temporary_by_default() || status >= 500;
    (kind, temporary)
}

/// Maps an SDK failure to the shared error: EC2's error codes first, then the HTTP
/// status; transport failures and timeouts are temporary `unavailable`, an answer the
/// SDK cannot read is a temporary `unexpected`. Nothing here carries a credential: the
/// SDK never puts the secret key in an error, and the request is not kept.
pub(crate) fn parse_error<E>(provider: &str, operation: Operation, err: SdkError<E>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    parse_with(classify, provider, operation, err)
}

/// [`parse_error`] for CloudFront's calls: its codes through [`classify_cloudfront`].
pub(crate) fn parse_cloudfront_error<E>(
    provider: &str,
    operation: Operation,
    err: SdkError<E>,
) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    parse_with(classify_cloudfront, provider, operation, err)
}

fn parse_with<E>(
    classify: fn(Option<&str>, u16) -> (ErrorKind, bool),
    provider: &str,
    operation: Operation,
    err: SdkError<E>,
) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let chain = DisplayErrorContext(&err).to_string();
    match &err {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let code = service.err().code();
            let (kind, temporary) = classify(code, status);
            let message = match (code, service.err().message()) {
                (Some(code), Some(message)) => format!("HTTP {status} {code}: {message}"),
                (Some(code), None) => format!("HTTP {status} {code}"),
                _ => format!("HTTP {status}: {chain}"),
            };
            Error::new(kind, provider, operation)
                .with_message(message)
                .set_temporary(temporary)
                .with_source(err)
        }
        SdkError::TimeoutError(_) => Error::new(ErrorKind::Unavailable, provider, operation)
            .with_message("request timed out")
            .set_temporary(true)
            .with_source(err),
        SdkError::DispatchFailure(failure) => {
            let what = if failure.is_timeout() {
                "request timed out"
            } else if failure.is_io() {
                "cannot reach the endpoint"
            } else {
                "request failed"
            };
            Error::new(ErrorKind::Unavailable, provider, operation)
                .with_message(format!("{what}: {chain}"))
                .set_temporary(true)
                .with_source(err)
        }
        SdkError::ResponseError(response) => {
            let status = response.raw().status().as_u16();
            let kind = if status >= 500 {
                ErrorKind::Unavailable
            } else {
                ErrorKind::Unexpected
            };
            Error::new(kind, provider, operation)
                .with_message(format!("HTTP {status}, answer not understood: {chain}"))
                .set_temporary(true)
                .with_source(err)
        }
        SdkError::ConstructionFailure(_) => {
            Error::new(ErrorKind::InvalidInput, provider, operation)
                .with_message(format!("request could not be built: {chain}"))
                .with_source(err)
        }
        _ => Error::new(ErrorKind::Unexpected, provider, operation)
            .with_message(chain)
            .with_source(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ec2::config::http::HttpResponse;
    use aws_sdk_ec2::error::{ConnectorError, ErrorMetadata};
    use aws_sdk_ec2::operation::terminate_instances::TerminateInstancesError;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;

    fn service(status: u16, code: &str, message: &str) -> SdkError<TerminateInstancesError> {
        let meta = ErrorMetadata::builder().code(code).message(message).build();
        let raw = HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::empty());
        SdkError::service_error(TerminateInstancesError::generic(meta), raw)
    }

    fn parse(err: SdkError<TerminateInstancesError>) -> Error {
        parse_error("aws", Operation::RetireNode, err)
    }

    #[test]
    fn ec2_codes_map_to_the_shared_kinds() {
        let cases: &[(u16, &str, ErrorKind, bool)] = &[
            (
                400,
                "InvalidInstanceID.NotFound",
                ErrorKind::NotFound,
                false,
            ),
            (
                400,
                "InvalidInstanceID.Malformed",
                ErrorKind::NotFound,
                false,
            ),
            (
                400,
                "InvalidAllocationID.NotFound",
                ErrorKind::NotFound,
                false,
            ),
            (
                400,
                "InvalidAssociationID.NotFound",
                ErrorKind::NotFound,
                false,
            ),
            (
                503,
                "RequestLimitExceeded",
                ErrorKind::RateLimited {
                    retry_after: Some(THROTTLE_PAUSE),
                },
                true,
            ),
            (
                400,
                "Throttling",
                ErrorKind::RateLimited {
                    retry_after: Some(THROTTLE_PAUSE),
                },
                true,
            ),
            (401, "AuthFailure", ErrorKind::Unauthenticated, false),
            (
                403,
                "UnauthorizedOperation",
                ErrorKind::Unauthenticated,
                false,
            ),
            (
                400,
                "IdempotentParameterMismatch",
                ErrorKind::Conflict,
                false,
            ),
            (
                500,
                "InsufficientInstanceCapacity",
                ErrorKind::Unavailable,
                true,
            ),
            (
                400,
                "InstanceLimitExceeded",
                ErrorKind::QuotaExceeded,
                false,
            ),
            (400, "InvalidParameterValue", ErrorKind::InvalidInput, false),
            (400, "InvalidAMIID.NotFound", ErrorKind::InvalidInput, false),
            (500, "InternalError", ErrorKind::Unavailable, true),
            (503, "SomethingNew", ErrorKind::Unavailable, true),
            (404, "SomethingNew", ErrorKind::NotFound, false),
        ];
        for (status, code, kind, temporary) in cases {
            let e = parse(service(*status, code, "detail"));
            assert_eq!(e.kind(), *kind, "{code}: {e}");
            assert_eq!(e.is_temporary(), *temporary, "{code}: {e}");
            assert!(e.to_string().contains(code), "{e}");
            assert!(e.to_string().contains("detail"), "{e}");
        }
    }

    #[test]
    fn cloudfront_codes_map_to_the_shared_kinds() {
        use aws_sdk_cloudfront::operation::delete_distribution::DeleteDistributionError;
        let cases: &[(u16, &str, ErrorKind, bool)] = &[
            (404, "NoSuchDistribution", ErrorKind::NotFound, false),
            (404, "NoSuchResource", ErrorKind::NotFound, false),
            (409, "DistributionNotDisabled", ErrorKind::Conflict, true),
            (412, "PreconditionFailed", ErrorKind::Conflict, true),
            (400, "InvalidIfMatchVersion", ErrorKind::Conflict, false),
            (409, "DistributionAlreadyExists", ErrorKind::Conflict, false),
            (403, "AccessDenied", ErrorKind::Unauthenticated, false),
            (
                403,
                "InvalidClientTokenId",
                ErrorKind::Unauthenticated,
                false,
            ),
            (400, "TooManyDistributions", ErrorKind::QuotaExceeded, false),
            (400, "InvalidOrigin", ErrorKind::InvalidInput, false),
            (
                400,
                "InvalidOriginReadTimeout",
                ErrorKind::InvalidInput,
                false,
            ),
            (404, "NoSuchCachePolicy", ErrorKind::InvalidInput, false),
            (400, "IllegalUpdate", ErrorKind::InvalidInput, false),
            (
                400,
                "Throttling",
                ErrorKind::RateLimited {
                    retry_after: Some(THROTTLE_PAUSE),
                },
                true,
            ),
            (500, "InternalError", ErrorKind::Unavailable, true),
            (503, "ServiceUnavailable", ErrorKind::Unavailable, true),
            (404, "SomethingNew", ErrorKind::NotFound, false),
        ];
        for (status, code, kind, temporary) in cases {
            let meta = ErrorMetadata::builder()
                .code(*code)
                .message("detail")
                .build();
            let raw = HttpResponse::new(StatusCode::try_from(*status).unwrap(), SdkBody::empty());
            let err = SdkError::service_error(DeleteDistributionError::generic(meta), raw);
            let e = parse_cloudfront_error("aws", Operation::RetireFront, err);
            assert_eq!(e.kind(), *kind, "{code}: {e}");
            assert_eq!(e.is_temporary(), *temporary, "{code}: {e}");
            assert!(e.to_string().contains(code), "{e}");
            assert!(e.to_string().contains("retire_front"), "{e}");
        }
    }

    #[test]
    fn transport_failures_are_temporary_unavailable() {
        let refused = ConnectorError::io("connection refused".into());
        let e = parse(SdkError::dispatch_failure(refused));
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(e.is_temporary());
        assert!(e.to_string().contains("cannot reach"), "{e}");

        let slow = ConnectorError::timeout("read timed out".into());
        let e = parse(SdkError::dispatch_failure(slow));
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(e.to_string().contains("timed out"), "{e}");

        let e = parse(SdkError::timeout_error("attempt timeout"));
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(e.is_temporary());

        let garbled = HttpResponse::new(StatusCode::try_from(200).unwrap(), SdkBody::empty());
        let e = parse(SdkError::response_error("not XML", garbled));
        assert_eq!(e.kind(), ErrorKind::Unexpected);
        assert!(e.is_temporary());

        let e = parse(SdkError::construction_failure("missing field"));
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(!e.is_temporary());
    }
}
