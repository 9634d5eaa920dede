//! Thumbnails at the spec's standard sizes. Only JPEG, PNG, GIF and WebP are ever decoded,
//! and only when their declared dimensions stay under a pixel limit, so a decompression
//! bomb is refused before it is decoded.

use std::io::Cursor;

use image::{ImageFormat, ImageReader, Limits};

use super::MediaFile;
use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Scale,
    Crop,
}

impl Method {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "scale" => Some(Self::Scale),
            "crop" => Some(Self::Crop),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scale => "scale",
            Self::Crop => "crop",
        }
    }
}

/// A requested or generated thumbnail size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThumbnailSpec {
    pub width: i64,
    pub height: i64,
    pub method: Method,
}

/// The sizes the spec recommends servers generate.
const STANDARD: &[ThumbnailSpec] = &[
    ThumbnailSpec {
        width: 32,
        height: 32,
        method: Method::Crop,
    },
    ThumbnailSpec {
        width: 96,
        height: 96,
        method: Method::Crop,
    },
    ThumbnailSpec {
        width: 320,
        height: 240,
        method: Method::Scale,
    },
    ThumbnailSpec {
        width: 640,
        height: 480,
        method: Method::Scale,
    },
    ThumbnailSpec {
        width: 800,
        height: 600,
        method: Method::Scale,
    },
];

impl ThumbnailSpec {
    /// The smallest standard size of the same method at least as large as requested (or
    /// the largest there is), so each image has at most five thumbnails.
    pub fn standard(self) -> ThumbnailSpec {
        let same: Vec<&ThumbnailSpec> = STANDARD
            .iter()
            .filter(|s| s.method == self.method)
            .collect();
        same.iter()
            .find(|s| s.width >= self.width && s.height >= self.height)
            .or(same.last())
            .map(|s| **s)
            .expect("every method has standard sizes")
    }
}

pub struct Thumbnailer {
    max_pixels: u64,
}

fn refuse(reason: &str) -> Error {
    Error::CannotThumbnail(reason.to_owned())
}

impl Thumbnailer {
    pub fn new(max_pixels: u64) -> Self {
        Self { max_pixels }
    }

    /// The format of an image we are willing to decode, from its bytes (not its claimed
    /// content type).
    fn allowed_format(bytes: &[u8]) -> Option<ImageFormat> {
        match image::guess_format(bytes).ok()? {
            f @ (ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::Gif | ImageFormat::WebP) => {
                Some(f)
            }
            _ => None,
        }
    }

    /// Width and height of an allowed image, read from its header only.
    pub fn dimensions(&self, bytes: &[u8]) -> Option<(u32, u32)> {
        let format = Self::allowed_format(bytes)?;
        ImageReader::with_format(Cursor::new(bytes), format)
            .into_dimensions()
            .ok()
    }

    /// Decodes, resizes and encodes a thumbnail on a blocking thread.
    pub async fn generate(
        &self,
        original: &MediaFile,
        spec: ThumbnailSpec,
    ) -> Result<(Vec<u8>, &'static str)> {
        let bytes = tokio::fs::read(&original.path)
            .await
            .map_err(Error::internal)?;
        let max_pixels = self.max_pixels;
        tokio::task::spawn_blocking(move || render(&bytes, spec, max_pixels))
            .await
            .map_err(Error::internal)?
    }
}

fn render(bytes: &[u8], spec: ThumbnailSpec, max_pixels: u64) -> Result<(Vec<u8>, &'static str)> {
    let format = Thumbnailer::allowed_format(bytes)
        .ok_or_else(|| refuse("only JPEG, PNG, GIF and WebP images have thumbnails"))?;
    let (width, height) = ImageReader::with_format(Cursor::new(bytes), format)
        .into_dimensions()
        .map_err(|_| refuse("the image is corrupt"))?;
    if u64::from(width) * u64::from(height) > max_pixels {
        return Err(refuse("the image has too many pixels to thumbnail"));
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = Limits::default();
    limits.max_image_width = Some(width);
    limits.max_image_height = Some(height);
    limits.max_alloc = Some(max_pixels.saturating_mul(8));
    reader.limits(limits);
    let image = reader
        .decode()
        .map_err(|_| refuse("the image is corrupt"))?;
    let (w, h) = (spec.width as u32, spec.height as u32);
    let thumb = match spec.method {
        Method::Crop => image.resize_to_fill(w, h, image::imageops::FilterType::Triangle),
        // Never enlarge: a small image is its own thumbnail.
        Method::Scale if image.width() <= w && image.height() <= h => image,
        Method::Scale => image.thumbnail(w, h),
    };
    let mut out = Cursor::new(Vec::new());
    let (format, content_type) = match format {
        ImageFormat::Jpeg | ImageFormat::WebP => (ImageFormat::Jpeg, "image/jpeg"),
        _ => (ImageFormat::Png, "image/png"),
    };
    let thumb = if format == ImageFormat::Jpeg {
        image::DynamicImage::ImageRgb8(thumb.to_rgb8())
    } else {
        thumb
    };
    thumb.write_to(&mut out, format).map_err(Error::internal)?;
    Ok((out.into_inner(), content_type))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let image =
            image::RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 128]));
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn requests_round_to_standard_sizes() {
        let spec = |width, height, method| ThumbnailSpec {
            width,
            height,
            method,
        };
        assert_eq!(
            spec(10, 10, Method::Crop).standard(),
            spec(32, 32, Method::Crop)
        );
        assert_eq!(
            spec(50, 50, Method::Crop).standard(),
            spec(96, 96, Method::Crop)
        );
        assert_eq!(
            spec(500, 500, Method::Crop).standard(),
            spec(96, 96, Method::Crop)
        );
        assert_eq!(
            spec(300, 200, Method::Scale).standard(),
            spec(320, 240, Method::Scale)
        );
        assert_eq!(
            spec(5000, 5000, Method::Scale).standard(),
            spec(800, 600, Method::Scale)
        );
    }

    #[test]
    fn thumbnails_have_the_asked_shape() {
        let source = png(1000, 500);
        let (bytes, ct) = render(
            &source,
            ThumbnailSpec {
                width: 96,
                height: 96,
                method: Method::Crop,
            },
            1 << 24,
        )
        .unwrap();
        assert_eq!(ct, "image/png");
        let out = image::load_from_memory(&bytes).unwrap();
        assert_eq!((out.width(), out.height()), (96, 96));
        let (bytes, _) = render(
            &source,
            ThumbnailSpec {
                width: 320,
                height: 240,
                method: Method::Scale,
            },
            1 << 24,
        )
        .unwrap();
        let out = image::load_from_memory(&bytes).unwrap();
        assert_eq!((out.width(), out.height()), (320, 160));
    }

    #[test]
    fn refusals() {
        let crop = ThumbnailSpec {
            width: 32,
            height: 32,
            method: Method::Crop,
        };
        assert!(matches!(
            render(b"plain text", crop, 1 << 24),
            Err(Error::CannotThumbnail(_))
        ));
        let mut corrupt = png(64, 64);
        corrupt.truncate(60);
        assert!(matches!(
            render(&corrupt, crop, 1 << 24),
            Err(Error::CannotThumbnail(_))
        ));
        // A big image over the pixel limit is refused from its header alone.
        assert!(matches!(
            render(&png(300, 300), crop, 10_000),
            Err(Error::CannotThumbnail(_))
        ));
    }
}
