//! [`JsonBody`]: a JSON request body whose parse errors name the offending field; and
//! [`JsonAnswer`]: a JSON answer written straight from its type.
//!
//! poem-openapi's own `Json<T>` reports a missing or mistyped field as e.g. `Expected input
//! type "string", found null` without saying which field. `JsonBody<T>` keeps `T`'s schema in
//! the spec but parses with serde, through `serde_path_to_error`, so a client reads
//! `body.jobs[3].kind: missing field` instead.

use poem::{Request, RequestBody, Result};
use poem_openapi::error::{ContentTypeError, ParseRequestPayloadError};
use poem_openapi::payload::{Json, ParsePayload, Payload};
use poem_openapi::registry::{MetaMediaType, MetaRequest, MetaSchemaRef, Registry};
use poem_openapi::types::{ToJSON, Type};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};
use serde::de::DeserializeOwned;

/// A JSON body of type `T` (documented with `T`'s schema).
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: Type> Payload for JsonBody<T> {
    const CONTENT_TYPE: &'static str = "application/json";

    fn check_content_type(content_type: &str) -> bool {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        essence == "application/json"
            || (essence.starts_with("application/") && essence.ends_with("+json"))
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: Type + DeserializeOwned + Send> ParsePayload for JsonBody<T> {
    const IS_REQUIRED: bool = true;

    async fn from_request(request: &Request, body: &mut RequestBody) -> Result<Self> {
        let _ = request;
        let data = body.take()?.into_vec().await?;
        let mut de = serde_json::Deserializer::from_slice(&data);
        let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
            let path = err.path().to_string();
            let at = if path == "." {
                "body".to_string()
            } else {
                format!("body.{path}")
            };
            ParseRequestPayloadError {
                reason: format!("{at}: {}", err.inner()),
            }
        })?;
        Ok(JsonBody(value))
    }
}

impl<'a, T: Type + DeserializeOwned + Send> ApiExtractor<'a> for JsonBody<T> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        <Self as Payload>::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        Some(MetaRequest {
            description: None,
            content: vec![MetaMediaType {
                content_type: <Self as Payload>::CONTENT_TYPE,
                schema: <Self as Payload>::schema_ref(),
            }],
            required: true,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> Result<Self> {
        match request.content_type() {
            Some(ct) if Self::check_content_type(ct) => {
                <Self as ParsePayload>::from_request(request, body).await
            }
            Some(ct) => Err(ContentTypeError::NotSupported {
                content_type: ct.to_string(),
            }
            .into()),
            None => Err(ContentTypeError::ExpectContentType.into()),
        }
    }
}

/// A JSON answer of type `T`, documented with `T`'s schema (as poem-openapi's `Json<T>`) but
/// written with `T`'s serde encoding. `Json<T>` first builds a `serde_json::Value` tree of the
/// whole answer (a map allocated per object, freed after writing): for a batch of 1,000 jobs
/// that tree was most of the API's CPU time. The views keep both encodings the same JSON
/// (`model::view`'s tests compare them).
#[derive(Debug)]
pub struct JsonAnswer<T>(pub T);

// Spec side: exactly poem-openapi's `Json<T>` (content type, schema, response metadata).
impl<T: Type> Payload for JsonAnswer<T> {
    const CONTENT_TYPE: &'static str = Json::<T>::CONTENT_TYPE;

    fn check_content_type(content_type: &str) -> bool {
        Json::<T>::check_content_type(content_type)
    }

    fn schema_ref() -> MetaSchemaRef {
        Json::<T>::schema_ref()
    }

    fn register(registry: &mut Registry) {
        <Json<T> as Payload>::register(registry);
    }
}

impl<T: Type + serde::Serialize + Send> poem::IntoResponse for JsonAnswer<T> {
    fn into_response(self) -> poem::Response {
        // Only a map with non-string keys or a failing `Serialize` impl could fail; the views
        // have neither (and a status set here would be overwritten by the operation's).
        let body = serde_json::to_vec(&self.0).expect("views serialize");
        poem::Response::builder()
            .content_type(<Self as Payload>::CONTENT_TYPE)
            .body(body)
    }
}

impl<T: ToJSON + serde::Serialize + Send> poem_openapi::ApiResponse for JsonAnswer<T> {
    fn meta() -> poem_openapi::registry::MetaResponses {
        Json::<T>::meta()
    }

    fn register(registry: &mut Registry) {
        <Json<T> as poem_openapi::ApiResponse>::register(registry);
    }
}

/// For `#[serde(default, deserialize_with = "non_null")]` on an optional request field: the
/// field may be left out, but not sent as `null` — the spec does not declare it nullable, so
/// a client sending `null` has a bug worth a 400 naming the field.
pub fn non_null<'de, D, T>(de: D) -> std::result::Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(de).map(Some)
}
