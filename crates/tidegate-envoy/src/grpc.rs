//! The gRPC front end: `envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit`.

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::{
    RateLimitService, RateLimitServiceServer,
};
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use tonic::{Request, Response, Status};

use crate::service::RateLimiter;

/// The tonic service: hand [`RateLimiter::grpc_service`]'s value to a tonic `Server`.
#[derive(Debug, Clone)]
pub struct GrpcService {
    limiter: RateLimiter,
}

#[tonic::async_trait]
impl RateLimitService for GrpcService {
    async fn should_rate_limit(
        &self,
        request: Request<RateLimitRequest>,
    ) -> Result<Response<RateLimitResponse>, Status> {
        let response = self.limiter.should_rate_limit(request.get_ref()).await?;
        Ok(Response::new(response))
    }
}

impl RateLimiter {
    /// The gRPC service, for `tonic::transport::Server::builder().add_service(...)`.
    pub fn grpc_service(&self) -> RateLimitServiceServer<GrpcService> {
        RateLimitServiceServer::new(GrpcService {
            limiter: self.clone(),
        })
    }
}
