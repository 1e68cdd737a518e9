"""SAM ViT as a reference model: Meta's checkpoint layout loads, and fusionlab's predictor gives the
masks Meta's own SamPredictor gives (tiny random configuration of the same classes, no download)."""
from functools import partial

import numpy as np
import pytest
import torch
from segment_anything import SamPredictor
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

from fusionlab import FusionlabError, Predictor, build_model, load_checkpoint
from fusionlab.models.cost import encoder_gmacs
from fusionlab.models.presets import model_config


def _meta_sam(config):
    """Meta's ``_build_sam`` with a config's sizes (it hard-codes ViT-H/L/B at 1024 px)."""
    size = config.image_size[1]
    return Sam(
        image_encoder=ImageEncoderViT(depth=config.vit_depth, embed_dim=config.vit_embed_dim, img_size=size,
                                      mlp_ratio=4, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
                                      num_heads=config.vit_heads, patch_size=config.patch_size, qkv_bias=True,
                                      use_rel_pos=True, global_attn_indexes=config.vit_global_attn_indexes,
                                      window_size=config.vit_window_size, out_chans=config.embed_dim),
        prompt_encoder=PromptEncoder(embed_dim=config.embed_dim, image_embedding_size=(config.grid, config.grid),
                                     input_image_size=(size, size), mask_in_chans=16),
        mask_decoder=MaskDecoder(num_multimask_outputs=3, transformer=TwoWayTransformer(
            depth=2, embedding_dim=config.embed_dim, mlp_dim=config.decoder_mlp_dim,
            num_heads=config.decoder_heads), transformer_dim=config.embed_dim, iou_head_depth=3,
            iou_head_hidden_dim=config.iou_head_hidden_dim),
        pixel_mean=[123.675, 116.28, 103.53], pixel_std=[58.395, 57.12, 57.375]).eval()


def test_meta_checkpoint_loads_and_predicts_as_segment_anything_does(tmp_path):
    torch.manual_seed(0)
    reference = _meta_sam(model_config("sam-vit-tiny"))
    torch.save(reference.state_dict(), tmp_path / "sam_vit_tiny.pth")
    model = load_checkpoint(build_model("sam-vit-tiny"), tmp_path / "sam_vit_tiny.pth").eval()
    image = np.random.default_rng(0).integers(0, 256, (96, 120, 3), dtype=np.uint8)
    box = np.array([10, 12, 80, 70])
    theirs = SamPredictor(reference)
    theirs.set_image(image)
    ours = Predictor(model)
    ours.set_image(image)
    their_masks, their_iou, their_logits = theirs.predict(box=box, multimask_output=True)
    our_masks, our_iou, our_logits = ours.predict(box=box, multimask_output=True)
    assert np.abs(our_logits - their_logits).max() < 1e-4 and np.abs(our_iou - their_iou).max() < 1e-5
    assert (our_masks == their_masks).mean() > 0.999


def test_reference_presets_have_meta_sizes_and_refuse_a_fusion_block():
    with torch.device("meta"):
        sizes = {name: sum(p.numel() for p in build_model(name).parameters()) / 1e6
                 for name in ("sam-vit-b", "sam-vit-l", "sam-vit-h")}
    assert sizes == pytest.approx({"sam-vit-b": 93.7, "sam-vit-l": 312.3, "sam-vit-h": 641.1}, abs=0.1)
    with pytest.raises(FusionlabError, match="SAM ViT presets are RGB-only reference models"):
        build_model("sam-vit-tiny", fusion="add")
    with pytest.raises(FusionlabError, match=r"unknown model option\(s\) \[.width_list.\] of SamViTConfig"):
        build_model("sam-vit-tiny", width_list=[8, 16])
    assert encoder_gmacs(build_model("sam-vit-tiny")) > 0
