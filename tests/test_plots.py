"""sae_utils.plots: the drawing shape rules, mosaics and PNGs checked pixel by pixel, feature images
against the weights, and what the figure functions draw."""
import copy
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import PIL.Image  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from sae_utils import SparseAutoencoder, prepare_images  # noqa: E402
from sae_utils import metrics, plots  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def decode_png(data: bytes) -> PIL.Image.Image:
    image = PIL.Image.open(io.BytesIO(data))
    image.load()
    return image


# --- shapes, mosaics, PNGs ----------------------------------------------------------------------------

@pytest.mark.parametrize("n_values, shape, expected", [
    (784, None, (28, 28)), (36, None, (6, 6)), (1, None, (1, 1)),
    (10, (2, 5), (2, 5)), (10, [5, 2], (5, 2)), (784, (28, 28), (28, 28)), (10, (10, 1), (10, 1)),
])
def test_drawn_shape_of_square_and_given_shapes(n_values, shape, expected):
    assert plots.drawn_shape(n_values, shape) == expected
    assert isinstance(plots.drawn_shape(n_values, shape), tuple)


@pytest.mark.parametrize("n_values, shape, message", [
    (10, None, "inputs of 10 values are not square images; pass image_shape=(height, width) with height * width = 10"),
    (783, None, "inputs of 783 values are not square images"),
    (10, (3, 4), "image_shape must be (height, width) with height * width = 10, got (3, 4)"),
    (10, (2.0, 5.0), "got (2.0, 5.0)"),
    (10, (-2, -5), "got (-2, -5)"),
    (10, (10,), "got (10,)"),
    (10, (1, 2, 5), "got (1, 2, 5)"),
    (10, "2x5", "got '2x5'"),
])
def test_drawn_shape_refuses_what_cannot_be_drawn(n_values, shape, message):
    with pytest.raises(ValueError) as caught:
        plots.drawn_shape(n_values, shape)
    assert message in str(caught.value)


def test_tile_on_a_hand_made_array():
    a = np.array([[1, 2], [3, 4]], dtype=np.float32)
    f = 0.5
    mosaic = plots.tile(np.stack([a, a + 10, a + 20]), cols=2, gap=1, fill=f)
    expected = np.array([
        [1, 2, f, 11, 12],
        [3, 4, f, 13, 14],
        [f, f, f, f, f],
        [21, 22, f, f, f],
        [23, 24, f, f, f],
    ], dtype=np.float32)
    np.testing.assert_array_equal(mosaic, expected)
    assert mosaic.dtype == np.float32
    # No gap, one row: the images side by side.
    np.testing.assert_array_equal(plots.tile(np.stack([a, a + 10]), cols=2, gap=0), np.hstack([a, a + 10]))


def test_to_png_round_trip_pixel_by_pixel():
    array = np.array([[0.0, 0.5, 1.0], [0.25, 1.5, -1.0]])
    image = decode_png(plots.to_png(array, scale=2))
    assert image.mode == "P" and image.size == (6, 4)  # (width, height), each value a 2 x 2 block
    levels = np.array([[0, 128, 255], [64, 255, 0]])  # rint(255 * value), clipped to [0, 255]
    np.testing.assert_array_equal(np.array(image), np.repeat(np.repeat(levels, 2, axis=0), 2, axis=1))
    rgb = np.array(image.convert("RGB"))
    np.testing.assert_array_equal(rgb[::2, ::2], np.stack([levels] * 3, axis=-1))  # gray: level i is (i, i, i)
    # Another range maps to the same levels.
    assert np.array_equal(np.array(decode_png(plots.to_png(10 * array - 5, vmin=-5, vmax=5, scale=2))), np.array(image))


def test_bwr_pngs_draw_negative_blue_and_positive_red_on_one_scale():
    features = -np.ones((2, 3, 3))
    features[0, 2, 2] = 0.5      # pale red
    features[1] = 1.0            # full red: the shared scale ends at the 99.5th percentile of |w|, 1
    png, limit = plots.features_png(features)
    rgb = np.array(decode_png(png).convert("RGB"))
    assert limit == 1.0
    # 2 features -> 2 columns, one row, 3 x 3 each, a 2-pixel gap, 2 pixels per value.
    assert rgb.shape == (6, 16, 3)
    assert tuple(rgb[0, 0]) == (0, 0, 255)  # -1: full blue
    assert tuple(rgb[2 * 1, 2 * (3 + 2 + 1)]) == (255, 0, 0)  # feature 1, centre: +1, full red
    red, green, blue = (int(c) for c in rgb[4, 4])  # feature 0, +0.5: pale red
    assert red == 255 and 0 < green < 255 and green == blue


def test_reconstructions_png_puts_inputs_above_reconstructions():
    inputs, reconstructions = np.zeros((3, 4, 4)), np.ones((3, 4, 4))
    image = np.array(decode_png(plots.reconstructions_png(inputs, reconstructions)).convert("L"))
    assert image.shape == (2 * (2 * 4 + 2), 2 * (3 * 4 + 2 * 2))  # 2 rows, 3 columns, 2-pixel gaps, scale 2
    assert (image[:8, :8] == 0).all() and (image[-8:, :8] == 255).all()  # first input, first reconstruction
    assert (image[:8, 8:12] == 128).all()  # the gap between two inputs, fill 0.5


def test_error_maps_sit_under_their_digits():
    torch.manual_seed(0)
    model, images = SparseAutoencoder(8, n_input=16), torch.randint(0, 256, (5, 4, 4), dtype=torch.uint8)
    fig = plots.plot_reconstructions(model, images, 5, "title", error_map=True)
    for top, error in zip(fig.axes[:5], fig.axes[10:15]):
        p, q = top.get_position(), error.get_position()
        assert np.isclose(p.x0, q.x0) and np.isclose(p.width, q.width) and q.y0 < p.y0


# --- feature images: which weights, in which orientation ------------------------------------------------

def hand_weights_model():
    """10 inputs drawn as 2 x 5 images, 3 units; every weight a different number."""
    model = SparseAutoencoder(3, n_input=10)
    with torch.no_grad():
        model.encoder.weight.copy_(torch.arange(30.0).reshape(3, 10))         # (H, D)
        model.decoder.weight.copy_(-torch.arange(30.0).reshape(10, 3))        # (D, H)
    return model


def test_feature_images_are_encoder_rows_or_decoder_columns():
    model = hand_weights_model()
    encoder = plots.feature_images(model, "encoder", image_shape=(2, 5))
    decoder = plots.feature_images(model, "decoder", image_shape=(2, 5))
    assert encoder.shape == decoder.shape == (3, 2, 5)
    w_e = np.arange(30.0).reshape(3, 10)
    w_d = -np.arange(30.0).reshape(10, 3)
    for j in range(3):
        np.testing.assert_array_equal(encoder[j].numpy(), w_e[j].reshape(2, 5))     # unit j's input pattern
        np.testing.assert_array_equal(decoder[j].numpy(), w_d[:, j].reshape(2, 5))  # what unit j draws
    assert decoder[1, 0].tolist() == [-1.0, -4.0, -7.0, -10.0, -13.0]
    digits_model = SparseAutoencoder(4)
    torch.testing.assert_close(plots.feature_images(digits_model), digits_model.feature_images(), rtol=0, atol=0)


def test_feature_images_refuses_an_unknown_kind():
    with pytest.raises(ValueError, match=r"which must be 'encoder' or 'decoder', got 'both'"):
        plots.feature_images(SparseAutoencoder(4), "both")


# --- figures ---------------------------------------------------------------------------------------------

def test_plot_features_draws_the_chosen_units_on_one_colour_scale():
    model = hand_weights_model()
    fig = plots.plot_features(model, n=3, image_shape=(2, 5))
    assert isinstance(fig, Figure) and len(fig.axes) == 5  # 2 x 2 grid for 3 units (the 4th blank) + colour bar
    assert [t.get_text() for t in fig.texts] == ["Features of 3 hidden units (encoder weights)"]  # the suptitle
    fig = plots.plot_features(model, units=[2, 0], which="decoder", image_shape=(2, 5),
                              firing_frequency=np.array([0.5, 0.0, 0.125]))
    tiles, colour_bar = fig.axes[:2], fig.axes[-1]
    expected = plots.feature_images(model, "decoder", (2, 5))
    limit = torch.quantile(expected[[2, 0]].abs().flatten(), 0.995).item()
    for ax, unit in zip(tiles, [2, 0]):
        np.testing.assert_array_equal(np.asarray(ax.images[0].get_array()), expected[unit].numpy())
        assert ax.images[0].get_clim() == pytest.approx((-limit, limit))  # one shared, symmetric scale
    assert [ax.get_title() for ax in tiles] == ["unit 2, 12.5%", "unit 0, 50.0%"]
    assert colour_bar.get_ylabel().startswith("weight (colours saturate beyond")


def test_plot_features_lays_out_the_chosen_number_of_columns():
    model = hand_weights_model()   # 3 units
    fig = plots.plot_features(model, units=[0, 1, 2], image_shape=(2, 5), cols=3, colorbar_label="decoder weight")
    tiles = fig.axes[:-1]
    assert len(tiles) == 3 and all(ax.images for ax in tiles)   # one row of 3, no blank slot
    assert {round(ax.get_position().y0, 6) for ax in tiles} == {round(tiles[0].get_position().y0, 6)}   # one row
    assert fig.axes[-1].get_ylabel() == "decoder weight"
    with pytest.raises(ValueError):
        plots.plot_features(model, cols=0, image_shape=(2, 5))


def model_and_scaled_copy():
    """``hand_weights_model()`` and a copy whose decoder weights are 4 times larger."""
    model = hand_weights_model()
    scaled = copy.deepcopy(model)
    with torch.no_grad():
        scaled.decoder.weight.mul_(4)
    return model, scaled


def test_plot_feature_comparison_gives_each_model_its_own_block_scale_and_label():
    model, scaled = model_and_scaled_copy()
    fig = plots.plot_feature_comparison({"a": model, "b": scaled}, n=2, units={"a": [2, 0], "b": [1, 2]},
                                        which="decoder", image_shape=(2, 5), colorbar_label="weight / length",
                                        firing_frequency={"a": np.array([0.5, 0.0, 0.125]), "b": np.array([0.5, 0.25, 0.0])})
    tiles = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in tiles] == ["unit 2, 12.5%", "unit 0, 50.0%", "unit 1, 25.0%", "unit 2, 0.0%"]
    bars = [ax for ax in fig.axes if not ax.images and ax.get_ylabel()]
    assert [bar.get_ylabel() for bar in bars] == ["weight / length"] * 2
    limits = [tile.images[0].get_clim()[1] for tile in tiles]
    assert limits[0] == limits[1] and limits[2] == limits[3] and limits[2] > limits[0]   # one scale per block


def test_plot_feature_comparison_shared_scale_puts_every_block_on_one_scale_with_one_colour_bar():
    model, scaled = model_and_scaled_copy()
    fig = plots.plot_feature_comparison({"a": model, "b": scaled}, n=2, units={"a": [2, 0], "b": [1, 2]},
                                        which="decoder", image_shape=(2, 5), colorbar_label="w", shared_scale=True)
    tiles = [ax for ax in fig.axes if ax.images]
    assert len({tile.images[0].get_clim() for tile in tiles}) == 1                    # one scale for all
    bars = [ax for ax in fig.axes if not ax.images and ax.get_ylabel()]
    assert [bar.get_ylabel() for bar in bars] == ["w"]                                 # one colour bar
    assert bars[0].figure is fig.subfigs[-1]                                           # beside the last block


def test_plot_reconstructions_draws_inputs_above_reconstructions(test_digits):
    torch.manual_seed(0)
    model = SparseAutoencoder(8)
    fig = plots.plot_reconstructions(model, test_digits, n=5, title="t")
    assert isinstance(fig, Figure) and len(fig.axes) == 10
    x = prepare_images(test_digits[:5])
    for i in range(5):
        np.testing.assert_allclose(fig.axes[i].images[0].get_array(), x[i].reshape(28, 28).numpy())
        np.testing.assert_allclose(fig.axes[5 + i].images[0].get_array(),
                                   model.reconstruct(x[i:i + 1]).reshape(28, 28).numpy(), rtol=1e-6)


def test_plot_reconstructions_error_map_row_is_pixel_kl_on_one_scale_with_bce_and_floor(test_digits):
    torch.manual_seed(0)
    model = SparseAutoencoder(8)
    fig = plots.plot_reconstructions(model, test_digits, n=4, error_map=True)
    tiles = [ax for ax in fig.axes if ax.images]
    assert len(tiles) == 12 and len(fig.axes) == 13                        # three rows and one colour bar
    x = prepare_images(test_digits[:4]).double()
    x_hat = model.reconstruct(x.float()).double()
    kl = (torch.special.xlogy(x, x / x_hat) + torch.special.xlogy(1 - x, (1 - x) / (1 - x_hat)))   # (4, 784)
    maps = np.stack([ax.images[0].get_array() for ax in tiles[8:]])
    np.testing.assert_allclose(maps, kl.reshape(4, 28, 28).numpy(), atol=1e-5)
    limit = torch.quantile(kl.flatten(), 0.995).item()
    for ax in tiles[8:]:                                                   # one scale, 0 to a high percentile
        assert ax.images[0].get_clim() == pytest.approx((0, limit), rel=1e-5)
    assert "99.5th percentile" in fig.axes[-1].get_ylabel()
    floor = metrics.bce_floor(x.float())
    for ax, digit_kl, digit_floor in zip(tiles[:4], kl.mean(dim=1), floor):
        assert ax.get_title() == f"BCE {digit_floor + digit_kl:.3f}\nfloor {digit_floor:.3f}"
    plain = plots.plot_reconstructions(model, test_digits, n=4)
    assert len(plain.axes) == 8 and not plain.axes[0].get_title()          # off by default


def test_plot_loss_curves_draws_three_curves_the_published_losses_and_the_penalty_gap():
    history = {"epoch": [1, 2, 3], "train_objective": [0.3, 0.2, 0.1], "train_bce": [0.25, 0.15, 0.09],
               "test_bce": [0.26, 0.16, 0.095]}
    fig = plots.plot_loss_curves(history, {"train": 0.0862, "test": 0.0771})
    ax, gap = fig.axes
    assert len(ax.lines) == 5 and ax.get_yscale() == "log" and ax.get_ylabel() == "nats per pixel"
    assert list(ax.lines[2].get_ydata()) == history["test_bce"]
    np.testing.assert_allclose(gap.lines[0].get_ydata(), [0.05, 0.05, 0.01])  # objective - BCE, the weighted penalty
    assert len(plots.plot_loss_curves(history).axes[0].lines) == 3  # without published losses


def test_plot_loss_curves_takes_a_left_axis_label():
    history = {"epoch": [1, 2, 3], "train_objective": [0.3, 0.2, 0.1], "train_bce": [0.25, 0.15, 0.09],
               "test_bce": [0.26, 0.16, 0.095]}
    ax, gap = plots.plot_loss_curves(history, ylabel="loss per pixel (objective: BCE + λΩ)").axes
    assert ax.get_ylabel() == "loss per pixel (objective: BCE + λΩ)"
    assert gap.get_ylabel() == "weight × penalty (objective − BCE)"           # the right panel is unchanged
    with pytest.raises(ValueError, match="ylabel must be a non-empty string, got ''"):
        plots.plot_loss_curves(history, ylabel="")


def test_plot_loss_curves_names_the_family_weight_in_the_objective_legend():
    history = {"epoch": [1, 2, 3], "train_objective": [0.3, 0.2, 0.1], "train_bce": [0.25, 0.15, 0.09],
               "test_bce": [0.26, 0.16, 0.095]}
    labels = {f: plots.plot_loss_curves(history, family=f).axes[0].lines[0].get_label() for f in ("kl", "l1")}
    assert labels == {"kl": "train objective (BCE + β·penalty)", "l1": "train objective (BCE + λ·penalty)"}
    assert plots.plot_loss_curves(history).axes[0].lines[0].get_label() == "train objective (BCE + weight·penalty)"


def test_plot_loss_curves_marks_penalty_points_and_titles_the_right_panel():
    history = {"epoch": [1, 2, 3], "train_objective": [0.3, 0.2, 0.1], "train_bce": [0.25, 0.15, 0.09],
               "test_bce": [0.26, 0.16, 0.095]}
    _, gap = plots.plot_loss_curves(history, penalty_points={"on all digits": (3, 0.08)}, penalty_title="weighted").axes
    star = gap.lines[1]
    assert list(star.get_xdata()) == [3] and list(star.get_ydata()) == [0.08] and star.get_marker() == "*"
    assert [t.get_text() for t in gap.get_legend().get_texts()] == ["on all digits"] and gap.get_title() == "weighted"
    assert gap.get_ylim()[1] == pytest.approx(1.15 * 0.08)       # the star (0.08) is above every epoch (0.05)
    _, plain = plots.plot_loss_curves(history).axes
    assert plain.get_legend() is None and plain.get_title() == "objective − BCE (train, epoch mean)"
    with pytest.raises(ValueError, match="penalty_title must be a non-empty string, got ''"):
        plots.plot_loss_curves(history, penalty_title="")


def test_plot_unit_statistics_counts_the_units_never_active():
    fig = plots.plot_unit_statistics(np.array([0.0, 0.1, 0.3, 0.9]), np.array([0.0, 0.01, 0.5, 1.0]), rho=0.08)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert fig.axes[1].get_title() == "1 of 4 units never active"
    assert fig.axes[1].get_xscale() == "log" and sum(p.get_height() for p in fig.axes[1].patches) == 3
    assert [plots._percent_label(v) for v in (0.001, 0.01, 0.5, 1.0)] == ["0.1%", "1%", "50%", "100%"]
    assert fig.axes[0].get_title() == "1 of 4 units with $\\bar y_j = 0$ not drawn"
    assert sum(patch.get_height() for patch in fig.axes[0].patches) == 3      # the three units with rho_hat_j > 0
    sigmoid = plots.plot_unit_statistics(np.array([0.01, 0.1, 0.3, 0.9]), np.array([0.0, 0.01, 0.5, 1.0]))
    assert sigmoid.axes[0].get_title() == "" and sum(p.get_height() for p in sigmoid.axes[0].patches) == 4


def test_tradeoff_joins_the_points_where_one_hyperparameter_moves():
    def record(rho, beta, bce, mass):
        return {"params": {"rho": rho, "beta": beta}, "metrics": {"bce": bce, "units_for_mass": mass}}
    records = {"kl": [record(0.08, 0.0, 0.07, 300), record(0.08, 0.005, 0.072, 200), record(0.16, 0.005, 0.071, 250)]}
    fig = plots.plot_tradeoff(records, {"kl": [("beta", {"rho": 0.08})]})
    (line,) = fig.axes[0].lines
    assert list(line.get_xdata()) == [300, 200] and list(line.get_ydata()) == [0.07, 0.072]
    assert line.get_label() == "KL: β varies (ρ = 0.08)" and fig.axes[0].get_xscale() == "log"
    labels = [t.get_text() for t in fig.axes[0].texts]
    assert labels == ["β=0 (no penalty)"]  # the point with no penalty says so; the reference has its star
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "KL: other grid points" in legend  # rho = 0.16 lies on no line
    only_line = plots.plot_tradeoff({"kl": records["kl"][:2]}, {"kl": [("beta", {"rho": 0.08})]}, baselines={"pixels": 0.075})
    legend = [t.get_text() for t in only_line.axes[0].get_legend().get_texts()]
    assert "KL: other grid points" not in legend and "pixels" in legend  # no empty entry; the baseline drawn
    assert [l.get_ydata()[0] for l in only_line.axes[0].lines if l.get_label() == "pixels"] == [0.075]
    see_through = plots.plot_tradeoff(records, {"kl": [("beta", {"rho": 0.08})]}, star_alpha=0.5)
    stars = [c for c in see_through.axes[0].collections if c.get_label() == "KL reference"]
    assert [star.get_alpha() for star in stars] == [0.5]


def test_tradeoff_draws_extra_lines_in_their_order_with_their_labels():
    records = {"kl": [{"params": {"rho": 0.08, "beta": 0.005}, "metrics": {"bce": 0.07, "units_for_mass": 237}}]}
    fig = plots.plot_tradeoff(records, {}, extra_lines={"sigmoid L1": [(150, 0.069, "a"), (100, 0.072, "b")]})
    (line,) = [l for l in fig.axes[0].lines if l.get_label() == "sigmoid L1"]
    assert list(line.get_xdata()) == [150, 100] and list(line.get_ydata()) == [0.069, 0.072]
    assert line.get_color() == "C1" and {"a", "b"} <= {t.get_text() for t in fig.axes[0].texts}
    with pytest.raises(ValueError, match="extra_lines"):
        plots.plot_tradeoff(records, {}, extra_lines={"bad": [(150, 0.069)]})


def test_plot_tradeoff_views_draws_one_figure_per_view_with_its_layout():
    def record(rho, beta, bce, mass):
        return {"params": {"rho": rho, "beta": beta}, "metrics": {"bce": bce, "units_for_mass": mass}}
    records = {"kl": [record(0.08, 0.0, 0.07, 300), record(0.08, 0.005, 0.072, 200), record(0.32, 0.005, 0.068, 330)]}
    whole, zoom = plots.plot_tradeoff_views(records, {"kl": [("beta", {"rho": 0.08})]}, baselines={"floor": 0.058})
    assert whole.axes[0].get_ylim() == (0.056, 0.108) and zoom.axes[0].get_xlim() == pytest.approx((70, 360))
    assert zoom.axes[0].get_title() == "Test BCE against $k_{90}$ (zoom); stars ± one KL − L1 tolerance"
    assert [l.get_ydata()[0] for l in whole.axes[0].lines if l.get_label() == "floor"] == [0.058]  # kwargs pass on
    texts = [t.get_text() for t in whole.axes[0].texts]
    assert "KL ref." in texts  # stars annotated
    (only,) = plots.plot_tradeoff_views(records, {"kl": [("beta", {"rho": 0.08})]}, views="zoom", ylim=(0.06, 0.08))
    assert only.axes[0].get_ylim() == (0.06, 0.08)  # a keyword overrides the layout
    with pytest.raises(ValueError, match="views"):
        plots.plot_tradeoff_views(records, {"kl": [("beta", {"rho": 0.08})]}, views=("sideways",))
    whole, zoom = plots.plot_tradeoff_views(records, {"kl": [("beta", {"rho": 0.08})]},
                                            view_options={"zoom": {"ylim": (0.064, 0.104)}})
    assert zoom.axes[0].get_ylim() == (0.064, 0.104) and whole.axes[0].get_ylim() == (0.056, 0.108)  # that view only
    with pytest.raises(ValueError, match="view_options"):
        plots.plot_tradeoff_views(records, {"kl": [("beta", {"rho": 0.08})]}, views="zoom", view_options={"all points": {}})


def test_plot_loss_curves_from_a_later_epoch_on_a_linear_axis():
    history = {"epoch": [1, 2, 3], "train_objective": [0.3, 0.2, 0.1], "train_bce": [0.25, 0.15, 0.09],
               "test_bce": [0.26, 0.16, 0.095]}
    ax, gap = plots.plot_loss_curves(history, from_epoch=2, yscale="linear", family="l1").axes
    assert list(ax.lines[0].get_xdata()) == [2, 3] and ax.get_yscale() == "linear"
    np.testing.assert_allclose(gap.lines[0].get_ydata(), [0.05, 0.05, 0.01])  # the penalty from epoch 1
    assert gap.get_ylabel().startswith(r"$λ\,\Omega_{\mathrm{L1}}$")
    with pytest.raises(ValueError, match=r"from_epoch must be an integer in \[1, 3\], got 4"):
        plots.plot_loss_curves(history, from_epoch=4)
    with pytest.raises(ValueError, match="yscale must be one of 'log', 'linear', got 'symlog'"):
        plots.plot_loss_curves(history, yscale="symlog")
    _, later = plots.plot_loss_curves(history, from_epoch=2, penalty_from_epoch=2).axes
    assert list(later.lines[0].get_xdata()) == [2, 3] and list(later.get_xticks()) == [2, 3]
    assert later.get_ylim() == pytest.approx((0, 1.15 * 0.05))       # scaled to the epochs drawn
    with pytest.raises(ValueError, match=r"penalty_from_epoch must be an integer in \[1, 3\], got 0"):
        plots.plot_loss_curves(history, penalty_from_epoch=0)


def test_feature_dashboards_draw_the_top_digits_and_say_when_a_unit_is_dead(test_digits):
    from sae_utils.metrics import unit_dashboards

    code = torch.zeros(len(test_digits), 3)
    code[:, 1] = torch.arange(len(test_digits), dtype=torch.float32)  # unit 1: larger on later digits
    data = unit_dashboards(code, [1, 0], threshold=0.0)
    fig = plots.plot_feature_dashboards(np.zeros((2, 28, 28)), data, test_digits, [1, 0], "two units")
    top = fig.axes[1].images[0].get_array()
    expected = prepare_images(test_digits[[len(test_digits) - 1]]).reshape(28, 28).numpy()
    np.testing.assert_allclose(top[:28, :28], expected)  # the largest value first: the last digit
    assert fig.axes[2].get_title() == f"active on {100 * (len(test_digits) - 1) / len(test_digits):.1f}% of inputs"
    assert "never active" in fig.axes[5].texts[0].get_text()
    assert fig.axes[2].get_yscale() == "log" and fig.axes[2].get_ylabel() == "inputs (log scale)"


def test_unit_evidence_tiles_the_top_inputs_above_two_rows_each_on_its_own_shared_scale():
    top = np.zeros((2, 9, 28, 28), dtype=np.float32)
    top[0, 0], top[1, 8, 3, 4] = 1.0, 0.7                          # unit 7: first input white; unit 3: one pixel
    differences = np.zeros((2, 28, 28))
    differences[0, 0, 0], differences[1, 5, 5] = 0.5, -0.25
    decoder = np.ones((2, 784))
    decoder[1] = -2.0
    fig = plots.plot_unit_evidence(top, differences, decoder, [7, 3], np.array([0.0, 0.0, 0.0, 0.01, 0, 0, 0, 0.25]))
    cells = np.array(fig.axes[:6]).reshape(3, 2)
    assert [ax.get_title() for ax in cells[0]] == ["unit 7, 25.0%", "unit 3, 1.0%"]
    np.testing.assert_allclose(cells[0, 0].images[0].get_array()[:28, :28], 1.0)      # tiled 3 x 3, first first
    np.testing.assert_allclose(cells[0, 1].images[0].get_array()[60 + 3, 60 + 4], 0.7)  # the ninth tile
    np.testing.assert_allclose(cells[1, 1].images[0].get_array()[5, 5], -0.25)
    np.testing.assert_allclose(cells[2, 1].images[0].get_array(), -2.0 * np.ones((28, 28)))  # columns reshaped
    for row, limit in ((cells[1], 0.5), (cells[2], 2.0)):           # one symmetric scale per row
        assert all(ax.images[0].get_clim() == (-limit, limit) for ax in row)
    assert len(fig.axes) == 8                                       # and one colour bar for each of the two rows
    with pytest.raises(ValueError, match="9"):
        plots.plot_unit_evidence(top[:, :8], differences, decoder, [7, 3])
    with pytest.raises(ValueError, match="2 units"):
        plots.plot_unit_evidence(top, differences[:1], decoder, [7, 3])


def test_unit_labels_give_one_decimal_and_mark_rare_units():
    assert plots.unit_labels([0, 1, 2, 3], np.array([0.1234, 0.0004, 0.0, 0.9996])) == \
        ["unit 0, 12.3%", "unit 1, <0.1%", "unit 2, 0.0%", "unit 3, 100.0%"]
    assert plots.unit_labels([5]) == ["unit 5"]


def test_tradeoff_labels_only_the_chosen_points_and_drops_overlapping_labels():
    def record(beta, bce, mass):
        return {"params": {"rho": 0.08, "beta": beta}, "metrics": {"bce": bce, "units_for_mass": mass}}
    points = [record(b, 0.07 + b, m) for b, m in ((0.0, 300), (0.001, 280), (0.002, 260), (0.005, 200))]
    chosen = plots.plot_tradeoff({"kl": points}, {"kl": [("beta", {"rho": 0.08})]},
                                 label_points={"kl": [{"rho": 0.08, "beta": 0.002}]})
    assert [t.get_text() for t in chosen.axes[0].texts] == ["β=0.002"]
    crowded = [record(b, 0.07, m) for b, m in ((0.0, 100), (1e-6, 100.5), (2e-6, 101), (3e-6, 300))]
    texts = plots.plot_tradeoff({"kl": crowded}, {"kl": [("beta", {"rho": 0.08})]}).axes[0].texts
    assert [t.get_visible() for t in texts] == [True, False, False, True]  # three labels on one spot
    asked = [{"rho": 0.08, "beta": b} for b in (0.0, 1e-6)]
    texts = plots.plot_tradeoff({"kl": crowded}, {"kl": [("beta", {"rho": 0.08})]},
                                label_points={"kl": asked}).axes[0].texts
    assert [t.get_visible() for t in texts] == [True, True]           # asked for: kept, moved to the other side
    assert texts[1].xyann[1] == -4 - texts[0].xyann[1]


def test_tradeoff_labels_of_one_line_share_one_number_format():
    def record(lam, bce, mass):
        return {"params": {"lam": lam}, "metrics": {"bce": bce, "units_for_mass": mass}}
    points = [record(0.0, 0.065, 150), record(1e-5, 0.0654, 117), record(8e-5, 0.068, 70), record(1.6e-4, 0.07, 50)]
    texts = plots.plot_tradeoff({"l1": points}, {"l1": [("lam", {})]}).axes[0].texts
    assert [t.get_text() for t in texts] == ["λ=0 (no penalty)", "λ=1.0e-05", "λ=8.0e-05", "λ=1.6e-04"]
    kl = [{"params": {"rho": 0.08, "beta": b}, "metrics": {"bce": 0.07 + b, "units_for_mass": m}}
          for b, m in ((0.0015, 300), (0.015, 200))]
    assert [t.get_text() for t in plots.plot_tradeoff({"kl": kl}, {"kl": [("beta", {"rho": 0.08})]}).axes[0].texts] == [
        "β=0.0015", "β=0.015"]


def test_plot_along_draws_each_slider_with_zero_apart_and_the_seed_band():
    def record(beta, bce, mass):
        return {"params": {"rho": 0.08, "beta": beta}, "metrics": {"bce": bce, "units_for_mass": mass}}
    records = {"kl": [record(0.0, 0.066, 337), record(0.0015, 0.069, 235), record(0.005, 0.070, 237)]}
    fig = plots.plot_along(records, {"kl": [("beta", {"rho": 0.08})]}, spread={"kl": {"bce": 0.0001}})
    bce_ax, mass_ax = fig.axes
    line = bce_ax.lines[0]
    assert list(line.get_xdata()) == [0.0015, 0.005] and list(line.get_ydata()) == [0.069, 0.070]
    hollow = [l for l in bce_ax.lines if l.get_markerfacecolor() == "white"]
    assert [l.get_ydata()[0] for l in hollow] == [0.066] and hollow[0].get_xdata()[0] < 0.0015  # 0 left of the rest
    band = bce_ax.patches[0]  # a rectangle in (axes x, data y)
    assert (band.get_y(), band.get_y() + band.get_height()) == pytest.approx((0.070 - 0.0003, 0.070 + 0.0003))
    assert not mass_ax.patches  # no spread given for k90: no band
    assert "reference ± 3 seed std" in fig._suptitle.get_text()
    named = plots.plot_along(records, {"kl": [("beta", {"rho": 0.08})]}, spread={"kl": {"bce": 0.0001}},
                             n_spreads=4 * 2 ** 0.5, band_label="reference ± 4s, s = √2σ")
    assert "reference ± 4s, s = √2σ" in named._suptitle.get_text()
    assert "5.66" in plots.plot_along(records, {"kl": [("beta", {"rho": 0.08})]}, spread={"kl": {"bce": 0.0001}},
                                      n_spreads=4 * 2 ** 0.5)._suptitle.get_text()
    labelled = plots.plot_along(records, {"kl": [("beta", {"rho": 0.08})]}, ylabels={"units_for_mass": "k90 here"})
    assert [ax.get_ylabel() for ax in labelled.axes] == [plots.SHORT_LABELS["bce"], "k90 here"]
    with pytest.raises(ValueError, match="ylabels"):
        plots.plot_along(records, {"kl": [("beta", {"rho": 0.08})]}, ylabels="k90")


def test_gallery_names_units_and_can_share_one_scale(test_digits):
    from sae_utils.atlas import load_atlas

    kl = load_atlas("kl")
    entries = {"a": kl.entry(rho=0.08, beta=0.005), "b": kl.entry(rho=0.02, beta=0.005)}
    own = plots.plot_atlas_gallery(entries, test_digits, n_digits=2, n_features=2)
    shared = plots.plot_atlas_gallery(entries, test_digits, n_digits=2, n_features=2, shared_scale=True)
    limits = [float(np.quantile(np.abs(e.features), 0.995)) for e in entries.values()]
    tiles = [ax for ax in own.axes if ax.images and ax.images[0].get_cmap().name == "bwr"]
    assert [ax.images[0].get_clim()[1] for ax in tiles] == pytest.approx([limits[0]] * 2 + [limits[1]] * 2)
    unit = entries["a"].feature_units[0]
    assert tiles[0].get_title() == plots.unit_labels([unit], entries["a"].firing_frequency)[0].replace(", ", "\n")
    shared_tiles = [ax for ax in shared.axes if ax.images and ax.images[0].get_cmap().name == "bwr"]
    assert {ax.images[0].get_clim()[1] for ax in shared_tiles} == {max(limits)}
    assert "the first test digit of each of the classes 0–1 (top row)" in own._suptitle.get_text()
    own_bars = [ax for ax in own.axes if ax.get_ylabel() == "decoder\nweight"]            # one bar per row, its own scale
    assert [bar.get_ylim()[1] for bar in own_bars] == pytest.approx(limits)
    assert [bar.get_ylim()[0] for bar in own_bars] == pytest.approx([-limit for limit in limits])
    assert len([ax for ax in shared.axes if ax.get_ylabel().startswith("decoder weight")]) == 1
    row_label = [ax for ax in own.axes if ax.get_ylabel().startswith("a\n")][0].get_ylabel()
    assert f"test BCE {entries['a'].metrics['bce']:.4f}, $k_{{90}}$ {entries['a'].metrics['units_for_mass']:.0f}" in row_label
    big = plots.plot_atlas_gallery(entries, test_digits, n_digits=2, n_features=2, text_scale=1.5)
    big_tiles = [ax for ax in big.axes if ax.images and ax.images[0].get_cmap().name == "bwr"]
    assert big_tiles[0].title.get_fontsize() == pytest.approx(1.5 * tiles[0].title.get_fontsize())
    big_label = [ax for ax in big.axes if ax.get_ylabel().startswith("a\n")][0].yaxis.label.get_fontsize()
    assert big_label == pytest.approx(1.5 * 8)
    with pytest.raises(ValueError, match="text_scale"):
        plots.plot_atlas_gallery(entries, test_digits, n_digits=2, n_features=2, text_scale=0)


def test_error_maps_show_input_minus_reconstruction_on_one_scale(test_digits):
    from sae_utils.atlas import load_atlas

    kl = load_atlas("kl")
    entries = {"a": kl.entry(rho=0.08, beta=0.005), "b": kl.entry(rho=0.01, beta=0.005)}
    fig = plots.plot_atlas_errors(entries, test_digits, n_digits=3)
    tiles = [ax for ax in fig.axes if ax.images and ax.images[0].get_cmap().name == "bwr"]
    assert len(tiles) == 6 and {ax.images[0].get_clim() for ax in tiles} == {(-1.0, 1.0)}
    first = entries["b"].digit_indices[2]   # row b, second tile: the first test digit of class 1
    expected = test_digits[int(first)].numpy() / 255 - entries["b"].recon[2] / 255
    np.testing.assert_allclose(tiles[4].images[0].get_array(), expected)
    assert np.abs(expected).max() > 0.1   # a real error, not an all-zero picture
    label = [ax for ax in fig.axes if ax.get_ylabel().startswith("b\n")][0].get_ylabel()
    assert f"FVU {100 * entries['b'].metrics['fraction_variance_unexplained']:.1f} %" in label
    assert len([ax for ax in fig.axes if "ink missing" in ax.get_ylabel()]) == 1   # one shared colour bar
    with pytest.raises(ValueError, match="entries"):
        plots.plot_atlas_errors({}, test_digits)


def test_plot_code_values_draws_every_value_and_each_units_average():
    code = torch.tensor([[0.9, 0.01], [0.1, 0.03], [0.2, 0.02], [0.0000001, 0.04]])
    fig = plots.plot_code_values(code, rho=0.05)
    left, right = fig.axes
    assert "12.50% below" in left.get_title()  # one of the eight values is below 1e-5 and not drawn
    points = right.collections[0].get_offsets()
    np.testing.assert_allclose(points, [[0.3, 0.25], [0.025, 0.0]], rtol=1e-6)  # (rho_hat_j, share above 0.5)
    with pytest.raises(ValueError, match=r"code must have values in \[0, 1\], got values in \[0, 2\]"):
        plots.plot_code_values(torch.tensor([[0.0, 2.0]]))


def test_plot_code_values_renames_legend_entries_and_the_right_axis_label():
    code = torch.tensor([[0.9, 0.01], [0.1, 0.03]])
    default = plots.plot_code_values(code, rho=0.05).axes[1]
    assert default.get_ylabel() == "share of inputs with $y_j > 0.5$"
    old = r"on for a share $\hat\rho_j$ of the inputs"
    assert old in [t.get_text() for t in default.get_legend().get_texts()]
    left, right = plots.plot_code_values(code, rho=0.05, labels={old: "a 0/1 code", "ρ = 0.05": "target"},
                                         ylabel="f_j").axes
    right_texts = [t.get_text() for t in right.get_legend().get_texts()]
    assert "a 0/1 code" in right_texts and old not in right_texts and right.get_ylabel() == "f_j"
    assert "target" in [t.get_text() for t in left.get_legend().get_texts()]
    with pytest.raises(ValueError, match="ylabel must be a non-empty string, got ' '"):
        plots.plot_code_values(code, ylabel=" ")


def test_plot_code_values_shades_values_below_the_threshold_with_their_share_of_the_sum():
    code = torch.tensor([[0.9, 0.01], [0.1, 0.03], [0.2, 0.02], [0.6, 0.04]])  # sum 1.9; values <= 0.5 sum 0.4
    left = plots.plot_code_values(code, rho=0.05, shade_below=True).axes[0]
    assert len(left.patches) > len(plots.plot_code_values(code, rho=0.05).axes[0].patches)  # the shaded span
    assert f"values ≤ 0.5: {0.4 / 1.9:.0%} of the sum" in [t.get_text() for t in left.get_legend().get_texts()]
    with pytest.raises(ValueError, match="shade_below must be True or False"):
        plots.plot_code_values(code, shade_below=1)


def test_tradeoff_says_log_scale_or_takes_the_callers_x_label():
    records = {"kl": [{"params": {"rho": 0.08, "beta": b}, "metrics": {"bce": y, "units_for_mass": x}}
                      for b, y, x in ((0.0, 0.07, 300), (0.005, 0.072, 200))]}
    default = plots.plot_tradeoff(records, {"kl": [("beta", {"rho": 0.08})]})
    assert default.axes[0].get_xlabel().endswith("(log scale)")
    named = plots.plot_tradeoff(records, {"kl": [("beta", {"rho": 0.08})]}, xlabel="k90")
    assert named.axes[0].get_xlabel() == "k90"


def test_tradeoff_labels_the_x_ticks_it_is_given_inside_the_shown_range():
    records = {"kl": [{"params": {"rho": 0.08, "beta": b}, "metrics": {"bce": y, "units_for_mass": x}}
                      for b, y, x in ((0.0, 0.07, 300), (0.005, 0.072, 90))]}
    lines = {"kl": [("beta", {"rho": 0.08})]}
    ticks = plots.plot_tradeoff(records, lines, xlim=(70, 360), xticks=(50, 80, 150, 300, 1000)).axes[0]
    assert list(ticks.get_xticks()) == [80, 150, 300]
    assert [t.get_text() for t in ticks.get_xticklabels()] == ["80", "150", "300"]
    default = plots.plot_tradeoff(records, lines, xlim=(70, 360)).axes[0]
    assert list(default.get_xticks()) == [t for t in plots.LOG_TICKS if 70 <= t <= 360]
    with pytest.raises(ValueError, match="xticks"):
        plots.plot_tradeoff(records, lines, xticks=(0, 100))


def test_dashboard_titles_give_the_digits_that_tell_the_top_values_apart():
    assert plots._value_range(0.12345, 0.9) == "0.123–0.9"
    assert plots._value_range(0.999512, 0.999987) == "0.99951–0.99999"
    assert plots._value_range(1.0, 1.0) == "all 1.0000"  # a saturated sigmoid unit's top values


def test_feature_tile_corners_are_where_features_png_draws_each_tile():
    values = np.linspace(-1, 1, 7)
    features = np.stack([np.full((3, 4), value) for value in values])        # 7 tiles of 3 x 4: 3 per row
    rgb = np.array(decode_png(plots.features_png(features)[0]).convert("RGB")).astype(int)
    corners = plots.feature_tile_corners(7, rgb.shape[1], rgb.shape[0])
    assert corners[:4] == [(0, 0), (12, 0), (24, 0), (0, 10)]      # (4 + 2 gap) * 2 across, (3 + 2) * 2 down
    colours = []
    for x, y in corners:
        tile = rgb[y:y + 3 * 2, x:x + 4 * 2]
        assert tile.shape == (6, 8, 3) and (tile == tile[0, 0]).all()           # exactly one tile, one value
        if x:
            assert (rgb[y, x - 1] >= 250).all()                                   # the gap (0, white) before it
        colours.append(tuple(tile[0, 0]))
    assert len(set(colours)) == 7 and colours[0] == (0, 0, 255) and colours[-1] == (255, 0, 0)   # in order


def test_features_png_washes_out_the_tiles_of_never_active_units():
    features = -np.ones((2, 3, 3))                                      # both full blue
    rgb = np.array(decode_png(plots.features_png(features, never_active=np.array([False, True]))[0]).convert("RGB"))
    assert rgb.shape == (6, 16, 3)
    assert tuple(rgb[0, 0]) == (0, 0, 255)                              # unit 0 active: full blue
    grey = tuple(rgb[0, 2 * (3 + 2)])                                   # unit 1 never active: 0.2 blue + 0.8 grey 0.7
    assert grey == (143, 143, 194)
    same = plots.features_png(features, never_active=np.array([False, False]))[0]
    assert same == plots.features_png(features)[0]                      # nothing to grey: the palette picture


def test_loss_curves_draw_single_points_inside_the_limits():
    history = {"epoch": [1, 2, 3], "train_objective": [0.3, 0.2, 0.15], "train_bce": [0.29, 0.19, 0.14],
               "test_bce": [0.28, 0.18, 0.13]}
    fig = plots.plot_loss_curves(history, from_epoch=2, yscale="linear", points={"ours, first 100 digits": (3, 0.05)})
    (star,) = [l for l in fig.axes[0].lines if l.get_label() == "ours, first 100 digits"]
    assert list(star.get_xdata()) == [3] and list(star.get_ydata()) == [0.05]
    low, high = fig.axes[0].get_ylim()
    assert low < 0.05 < high


def test_loss_curve_ticks_are_round_epochs_that_do_not_crowd():
    def history(n):
        return {"epoch": list(range(1, n + 1)), "train_objective": [1.0 / e for e in range(1, n + 1)],
                "train_bce": [0.9 / e for e in range(1, n + 1)], "test_bce": [0.9 / e for e in range(1, n + 1)]}
    assert list(plots.plot_loss_curves(history(20)).axes[1].get_xticks()) == [1, 5, 10, 15, 20]
    assert list(plots.plot_loss_curves(history(3)).axes[1].get_xticks()) == [1, 2, 3]
    assert list(plots.plot_loss_curves(history(60)).axes[1].get_xticks()) == [1, 10, 20, 30, 40, 50, 60]
    assert list(plots.plot_loss_curves(history(20), from_epoch=2).axes[0].get_xticks()) == [2, 5, 10, 15, 20]
    assert list(plots.plot_loss_curves(history(20), from_epoch=4).axes[0].get_xticks()) == [5, 10, 15, 20]  # 4 crowds 5


def test_tradeoff_draws_error_bars_on_the_reference_star_only_where_asked():
    records = {"kl": [{"params": {"rho": 0.08, "beta": b}, "metrics": {"bce": y, "units_for_mass": x}}
                      for b, y, x in ((0.0, 0.07, 300), (0.005, 0.072, 200))]}
    fig = plots.plot_tradeoff(records, {"kl": [("beta", {"rho": 0.08})]}, reference_errors={"kl": (8.0, 0.0005)},
                              legend_loc="lower left")
    (bars,) = fig.axes[0].containers
    x_bar, y_bar = (segments.get_segments()[0] for segments in bars.lines[2])
    np.testing.assert_allclose(x_bar, [[192.0, 0.072], [208.0, 0.072]])
    np.testing.assert_allclose(y_bar, [[200, 0.0715], [200, 0.0725]])
    assert not plots.plot_tradeoff(records, {"kl": [("beta", {"rho": 0.08})]}).axes[0].containers


def test_tradeoff_draws_annotated_stars_above_their_error_bars():
    records = {"kl": [{"params": {"rho": 0.08, "beta": b}, "metrics": {"bce": y, "units_for_mass": x}}
                      for b, y, x in ((0.0, 0.07, 300), (0.005, 0.072, 200))]}
    fig = plots.plot_tradeoff(records, {"kl": [("beta", {"rho": 0.08})]}, reference_errors={"kl": (8.0, 0.0005)},
                              star_size=70, annotate_stars=True)
    ax = fig.axes[0]
    (star,) = [c for c in ax.collections if c.get_label() == "KL reference"]
    bar_zorder = max(line.get_zorder() for line in ax.containers[0].lines[2])
    assert list(star.get_sizes()) == [70] and star.get_zorder() > bar_zorder
    (name,) = [t for t in ax.texts if t.get_text() == "KL ref."]
    assert name.get_visible() and name.xy == (200, 0.072)
    plain = plots.plot_tradeoff(records, {"kl": [("beta", {"rho": 0.08})]})
    assert not [t for t in plain.axes[0].texts if t.get_text() == "KL ref."]


def test_plot_along_marks_a_point_off_the_given_range_on_the_edge_with_its_value():
    def record(lam, bce, mass):
        return {"params": {"lam": lam}, "metrics": {"bce": bce, "units_for_mass": mass}}
    records = {"l1": [record(0.0, 0.066, 150), record(4e-5, 0.068, 85), record(6.4e-4, 0.103, 17)]}
    fig = plots.plot_along(records, {"l1": [("lam", {})]}, ylims={"bce": (0.06, 0.08)})
    bce_ax, mass_ax = fig.axes
    assert bce_ax.get_ylim() == (0.06, 0.08)
    (edge,) = [l for l in bce_ax.lines if l.get_marker() == "^"]
    assert list(edge.get_xdata()) == [6.4e-4] and list(edge.get_ydata()) == [0.08]
    assert [t.get_text() for t in bce_ax.texts] == ["0.103"]
    assert not [l for l in mass_ax.lines if l.get_marker() in "^v"] and not mass_ax.texts  # k90 row unchanged
    assert "nominal x" in mass_ax.get_xlabel()


def test_plot_kl_curves_draws_the_bernoulli_kl_of_each_target():
    fig = plots.plot_kl_curves((0.02, 0.5), n_points=50)
    left, right = fig.axes[:2]
    curves = [line for line in left.get_lines() if len(line.get_xdata()) == 50]
    assert len(curves) == 2 and left.get_xscale() == "logit"
    for line, rho in zip(curves, (0.02, 0.5)):
        q = np.asarray(line.get_xdata(), dtype=np.float64)
        by_hand = rho * np.log(rho / q) + (1 - rho) * np.log((1 - rho) / (1 - q))   # float64 formula
        assert np.allclose(line.get_ydata(), by_hand, rtol=1e-10, atol=1e-12)
        assert abs(q.min() - 1 / (1 + np.exp(9.2))) < 1e-12
    assert right.get_xlim() == pytest.approx((1.5e-3, 0.85)) and right.get_ylim()[1] == 0.5
    plt.close(fig)
    with pytest.raises(ValueError, match="targets"):
        plots.plot_kl_curves(())
    with pytest.raises(ValueError, match="targets"):
        plots.plot_kl_curves((0.0,))
    with pytest.raises(ValueError, match="zoom"):
        plots.plot_kl_curves(zoom=(0.5, 0.1))
    plt.close("all")


def test_tradeoff_value_format_writes_the_point_labels():
    from sae_utils import atlas
    def record(lam, bce, l0):
        return {"params": {"lam": lam}, "metrics": {"bce": bce, "l0": l0}}
    points = [record(0.0, 0.065, 210), record(2e-5, 0.066, 150), record(6.4e-4, 0.10, 24)]
    texts = plots.plot_tradeoff({"l1": points}, {"l1": [("lam", {})]}, x_key="l0",
                                value_format=atlas.label).axes[0].texts
    assert sorted(t.get_text() for t in texts) == ["λ=0 (no penalty)", "λ=2e-5", "λ=6.4e-4"]
    default = plots.plot_tradeoff({"l1": points}, {"l1": [("lam", {})]}, x_key="l0").axes[0].texts
    assert "λ=6.4e-04" in [t.get_text() for t in default]   # the default format is unchanged
    with pytest.raises(ValueError, match="value_format"):
        plots.plot_tradeoff({"l1": points}, {"l1": [("lam", {})]}, value_format=".1e")


def test_tradeoff_text_size_sets_the_legend_and_the_point_labels():
    def record(lam, bce, l0):
        return {"params": {"lam": lam}, "metrics": {"bce": bce, "l0": l0}}
    points = [record(0.0, 0.065, 210), record(2e-5, 0.066, 150), record(6.4e-4, 0.10, 24)]
    big = plots.plot_tradeoff({"l1": points}, {"l1": [("lam", {})]}, x_key="l0", text_size=10).axes[0]
    assert {t.get_fontsize() for t in big.texts} == {10} and big.texts
    assert {t.get_fontsize() for t in big.get_legend().get_texts()} == {10}
    default = plots.plot_tradeoff({"l1": points}, {"l1": [("lam", {})]}, x_key="l0").axes[0]
    assert {t.get_fontsize() for t in default.get_legend().get_texts()} == {7}   # today's size by default
    with pytest.raises(ValueError, match="text_size"):
        plots.plot_tradeoff({"l1": points}, {"l1": [("lam", {})]}, x_key="l0", text_size=0)


def test_tradeoff_marks_unpenalised_points_and_draws_extra_points():
    def record(rho, beta, bce, mass):
        return {"params": {"rho": rho, "beta": beta}, "metrics": {"bce": bce, "units_for_mass": mass}}
    records = {"kl": [record(0.08, 0.0, 0.07, 300), record(0.08, 0.005, 0.072, 200), record(0.16, 0.005, 0.071, 250),
                      record(0.16, 0.0, 0.066, 340)]}
    fig = plots.plot_tradeoff(records, {"kl": [("beta", {"rho": 0.08})]}, unpenalised_marker="D",
                              extra_points={"KL, default start": (180.0, 0.078, 5.0, 0.001)})
    by_label = {c.get_label(): c for c in fig.axes[0].collections}
    assert by_label["KL: other grid points, no penalty"].get_offsets().tolist() == [[340, 0.066]]
    assert by_label["KL: other grid points"].get_offsets().tolist() == [[250, 0.071]]
    assert by_label["KL, default start"].get_offsets().tolist() == [[180.0, 0.078]]
    assert by_label["KL, default start"].get_zorder() > by_label["KL reference"].get_zorder()
    plain = plots.plot_tradeoff(records, {"kl": [("beta", {"rho": 0.08})]})
    assert "KL: other grid points, no penalty" not in [c.get_label() for c in plain.axes[0].collections]


def test_plot_mass_curves_draws_the_mean_share_in_the_k_largest_values():
    code = torch.tensor([[3.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    fig = plots.plot_mass_curves({"a": code}, title="t")
    ax = fig.axes[0]
    (curve,) = [line for line in ax.lines if line.get_label() == "a"]
    by_hand = [(0.75 + 0.25) / 2, (1.0 + 0.5) / 2, (1.0 + 0.75) / 2, 1.0]      # shares of the two inputs, averaged
    np.testing.assert_allclose(curve.get_xydata(), np.column_stack([np.arange(1, 5), by_hand]), rtol=1e-6)
    assert ax.get_xscale() == "log" and ax.get_title() == "t"
    with pytest.raises(ValueError, match=r"codes\['negative'\] must have values in \[0, inf\]"):
        plots.plot_mass_curves({"negative": -code})


def test_tradeoff_places_asked_labels_and_star_names_at_their_offsets():
    def record(rho, beta, bce, mass):
        return {"params": {"rho": rho, "beta": beta}, "metrics": {"bce": bce, "units_for_mass": mass}}
    records = {"kl": [record(0.08, 0.0, 0.07, 300), record(0.08, 0.005, 0.072, 200), record(0.08, 0.05, 0.08, 250)]}
    fig = plots.plot_tradeoff(records, {"kl": [("beta", {"rho": 0.08})]}, annotate_stars=True,
                              label_offsets={"kl": {("beta", 0.05): (-20, 15)}}, star_offsets={"kl": (-12, -14)})
    texts = {t.get_text(): t for t in fig.axes[0].texts}
    moved, star = texts["β=0.05"], texts["KL ref."]
    assert moved.xyann == (-20, 15) and moved.get_ha() == "right" and moved.arrow_patch is not None
    assert moved.xy == (250, 0.08) and moved.get_visible()
    assert star.xyann == (-12, -14) and star.xy == (200, 0.072) and star.arrow_patch is not None
    assert texts["β=0 (no penalty)"].xyann != (-20, 15)                     # the others keep their places
    default = plots.plot_tradeoff(records, {"kl": [("beta", {"rho": 0.08})]}, annotate_stars=True)
    assert {t.get_text(): t for t in default.axes[0].texts}["KL ref."].xyann == (9, 5)
    with pytest.raises(ValueError, match="star_offsets"):
        plots.plot_tradeoff(records, {"kl": [("beta", {"rho": 0.08})]}, star_offsets={"kl": (1, 2, 3)})
    plt.close("all")


def test_mass_curves_take_an_x_label():
    code = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]])
    ax = plots.plot_mass_curves({"a": code}, xlabel="k (log scale)").axes[0]
    assert ax.get_xlabel() == "k (log scale)"
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [0.75, 1.0, 1.0])   # shares (1 + 0.5) / 2, then all
    assert plots.plot_mass_curves({"a": code}).axes[0].get_xlabel() == "k, the largest code values of an input"
    plt.close("all")


def test_code_value_histograms_count_every_value():
    codes = {"KL": torch.tensor([[0.1, 0.2], [0.9, 0.3]]), "L1": torch.tensor([[0.0, 0.0], [0.0, 2.0]])}
    fig = plots.plot_code_value_histograms(codes, {"KL": 0.5, "L1": 0.0}, bins=4)
    for ax, (label, code) in zip(fig.axes, codes.items()):
        heights = [patch.get_height() for patch in ax.patches]
        assert heights == list(np.histogram(code.flatten().numpy(), bins=4)[0]) and sum(heights) == 4
        assert ax.get_yscale() == "log" and ax.lines[0].get_xdata()[0] == {"KL": 0.5, "L1": 0.0}[label]
    with pytest.raises(ValueError, match="same non-empty labels"):
        plots.plot_code_value_histograms(codes, {"KL": 0.5})
    plt.close("all")


def test_plot_loss_curves_draws_horizontal_lines_such_as_the_floor():
    history = {"epoch": [1, 2, 3], "train_objective": [0.3, 0.2, 0.1], "train_bce": [0.25, 0.15, 0.09],
               "test_bce": [0.26, 0.16, 0.095]}
    ax, _ = plots.plot_loss_curves(history, yscale="linear", hlines={"BCE floor": 0.05}).axes
    floor = [line for line in ax.lines if line.get_label() == "BCE floor"]
    assert len(floor) == 1 and list(floor[0].get_ydata()) == [0.05, 0.05] and ax.get_ylim()[0] <= 0.05
    assert len(plots.plot_loss_curves(history).axes[0].lines) == 3                 # default: none
    with pytest.raises(ValueError, match="hlines"):
        plots.plot_loss_curves(history, hlines={"floor": 0.0})                      # 0 on a log axis


def test_plot_along_draws_log_keys_rows_on_a_log_y_axis_only():
    from sae_utils.atlas import load_atlas

    records = {"kl": load_atlas("kl").records()}
    fig = plots.plot_along(records, {"kl": [("beta", {"rho": 0.08})]}, keys=("bce", "active_units_per_digit"),
                           log_keys=("active_units_per_digit",))
    assert [ax.get_yscale() for ax in fig.axes] == ["linear", "log"]
    with pytest.raises(ValueError, match="log_keys"):
        plots.plot_along(records, {"kl": [("beta", {"rho": 0.08})]}, log_keys=("l0",))
    plt.close(fig)


def test_penalty_shapes_draws_the_kl_divergence_its_slope_and_the_living_means():
    means = {"kl": torch.tensor([0.05, 0.08, 0.2]), "l1": torch.tensor([0.0, 0.01, 0.5])}
    fig = plots.plot_penalty_shapes(0.08, means, weight_ratio=125)
    left, right = fig.axes[:2]
    by_label = {line.get_label(): line for line in left.lines}
    kl_curve = next(line for label, line in by_label.items() if label.startswith("KL:"))
    q = np.asarray(kl_curve.get_xdata(), dtype=np.float64)
    np.testing.assert_allclose(kl_curve.get_ydata(), 0.08 * np.log(0.08 / q) + 0.92 * np.log(0.92 / (1 - q)), rtol=1e-9)
    slope = np.asarray(next(l for l in right.lines if l.get_label().startswith("KL:")).get_ydata())
    crossing = q[np.argmax(slope > 0)]                           # the slope changes sign at rho
    assert slope[0] < 0 < slope[-1] and abs(crossing / 0.08 - 1) < 0.02
    l1_curve = next(line for label, line in by_label.items() if label.startswith("L1:"))
    assert np.isclose(min(l1_curve.get_xdata()), 0.01) and np.isclose(max(l1_curve.get_xdata()), 0.5)
    np.testing.assert_allclose(l1_curve.get_ydata(), l1_curve.get_xdata())      # the L1 penalty is the mean itself
    assert len(by_label["ticks: the L1 reference's unit means"].get_xdata()) == 2   # the dead unit left out
    assert len(by_label["ticks: the KL reference's unit means"].get_xdata()) == 3 and "125" in fig._suptitle.get_text()
    with pytest.raises(ValueError, match="unit_means"):
        plots.plot_penalty_shapes(0.08, {"kl": means["kl"]})
    with pytest.raises(ValueError, match="rho"):
        plots.plot_penalty_shapes(1.5, means)


def test_tradeoff_extra_label_offsets_move_the_named_extra_line_labels():
    records = {"kl": [{"params": {"rho": 0.08, "beta": 0.005}, "metrics": {"bce": 0.07, "units_for_mass": 237}}]}
    extra = {"sigmoid L1": [(150, 0.069, "a"), (100, 0.072, "b")]}
    default = {t.get_text(): t for t in plots.plot_tradeoff(records, {}, extra_lines=extra).axes[0].texts}
    assert default["a"].xyann == (4, -10) and default["b"].xyann == (4, -10)
    moved = {t.get_text(): t for t in plots.plot_tradeoff(records, {}, extra_lines=extra,
                                                           extra_label_offsets={"sigmoid L1": {"a": (-6, 14)}}).axes[0].texts}
    assert moved["a"].xyann == (-6, 14) and moved["a"].get_ha() == "right" and moved["a"].arrow_patch is not None
    assert moved["b"].xyann == (4, -10)  # labels not named stay where they were
    with pytest.raises(ValueError, match="extra_label_offsets"):
        plots.plot_tradeoff(records, {}, extra_lines=extra, extra_label_offsets={"sigmoid L1": {"a": (1, 2, 3)}})


def test_tradeoff_hollow_unpenalised_draws_the_zero_weight_line_point_hollow():
    def record(beta, bce, mass):
        return {"params": {"rho": 0.08, "beta": beta}, "metrics": {"bce": bce, "units_for_mass": mass}}
    records = {"kl": [record(0.0, 0.066, 337), record(0.005, 0.070, 237), record(0.05, 0.075, 250)]}
    lines = {"kl": [("beta", {"rho": 0.08})]}
    assert not [c for c in plots.plot_tradeoff(records, lines).axes[0].collections if c.get_gid() == "unpenalised"]
    (hollow,) = [c for c in plots.plot_tradeoff(records, lines, hollow_unpenalised=True).axes[0].collections
                 if c.get_gid() == "unpenalised"]
    assert hollow.get_offsets().tolist() == [[337, 0.066]]  # only the beta = 0 point
    assert tuple(hollow.get_facecolor()[0]) == (1.0, 1.0, 1.0, 1.0)


def test_penalty_shapes_x_min_extends_the_kl_curve_and_tick_options_thin_the_ticks():
    means = {"kl": torch.full((8,), 0.08), "l1": torch.tensor([0.0, 2e-5, 1e-3, 0.5])}
    default = plots.plot_penalty_shapes(0.08, means)
    assert default.axes[0].lines[0].get_xdata().min() == pytest.approx(1e-3)
    ticks = [l for l in default.axes[0].lines if l.get_label().startswith("ticks")]
    assert [l.get_alpha() for l in ticks] == [0.4, 0.4]
    wide = plots.plot_penalty_shapes(0.08, means, x_min="means", tick_alpha={"kl": 0.05, "l1": 0.4}, tick_width=0.5)
    for ax in wide.axes:  # both panels' KL curves reach the smallest living unit mean
        assert ax.lines[0].get_xdata().min() == pytest.approx(2e-5)
    ticks = {l.get_label(): l for l in wide.axes[0].lines if l.get_label().startswith("ticks")}
    kl_ticks = ticks["ticks: the KL reference's unit means"]
    assert kl_ticks.get_alpha() == 0.05 and kl_ticks.get_markeredgewidth() == 0.5
    assert ticks["ticks: the L1 reference's unit means"].get_alpha() == 0.4
    assert wide.axes[0].get_legend()._loc == 9  # "upper center", clear of the longer KL curve
    assert plots.plot_penalty_shapes(0.08, means, x_min=1e-4).axes[0].lines[0].get_xdata().min() == pytest.approx(1e-4)
    for bad in ({"x_min": "ticks"}, {"x_min": 2.0}, {"tick_alpha": 0}, {"tick_alpha": {"kl": 0.1}}, {"tick_width": -1}):
        with pytest.raises(ValueError):
            plots.plot_penalty_shapes(0.08, means, **bad)
    plt.close("all")


def test_penalty_shapes_rug_keeps_the_penalty_axis_non_negative():
    means = {"kl": torch.tensor([0.05, 0.08, 0.1]), "l1": torch.tensor([0.0, 2e-5, 1e-3, 0.5])}
    fig = plots.plot_penalty_shapes(0.08, means, x_min="means", tick_alpha={"kl": 0.03, "l1": 0.4}, rug=True)
    left, right, rug = fig.axes
    assert left.get_ylim()[0] == 0 and not [l for l in left.lines if l.get_label().startswith("ticks")]
    ticks = {l.get_label(): l for l in rug.lines}
    assert sorted(ticks["ticks: the KL reference's unit means"].get_xdata()) == pytest.approx([0.05, 0.08, 0.1])
    assert sorted(ticks["ticks: the L1 reference's unit means"].get_xdata()) == pytest.approx([2e-5, 1e-3, 0.5])  # living
    assert rug.get_shared_x_axes().joined(rug, left)
    legend = left.get_legend()
    assert [t.get_text().startswith("ticks") for t in legend.get_texts()] == [False, False, True, True]
    assert all(h.get_alpha() == 1.0 for h in legend.legend_handles[2:])     # solid legend markers
    plt.close("all")


def test_plot_sliders_draws_three_series_by_three_metrics_with_the_4_root2_band():
    def record(family, params, bce, mass, active):
        return {"params": params, "metrics": {"bce": bce, "units_for_mass": mass, "active_units_per_digit": active}}
    kl = [record("kl", {"rho": r, "beta": b}, 0.07 + r / 10, 200 + 100 * r, 10 + r)
          for r, b in ((0.08, 0.005), (0.01, 0.005), (0.08, 0.0), (0.08, 0.15))]
    l1 = [record("l1", {"lam": lam}, 0.067, 80, 130) for lam in (0.0, 4e-5, 1.6e-4)]
    spread = {"kl": {"bce": 1e-4, "units_for_mass": 1.0}, "l1": {"bce": 2e-4, "units_for_mass": 2.0}}
    fig = plots.plot_sliders({"kl": kl, "l1": l1}, spread)
    assert len(fig.axes) == 9
    assert [ax.get_yscale() for ax in fig.axes[6:]] == ["log"] * 3   # the active-units row
    band = fig.axes[0].patches[0]   # KL ρ column, test BCE row: ± 4√2 σ around 0.07 + 0.008
    assert band.get_height() == pytest.approx(2 * 4 * 2 ** 0.5 * 1e-4)
    with pytest.raises(ValueError, match="records"):
        plots.plot_sliders({"kl": kl}, spread)


def test_plot_kl_l1_tradeoff_draws_two_views_with_the_sigmoid_line_and_outside_legends():
    def record(params, bce, mass):
        return {"params": params, "metrics": {"bce": bce, "units_for_mass": mass}}
    records = {"kl": [record({"rho": 0.08, "beta": 0.0}, 0.07, 300), record({"rho": 0.08, "beta": 0.005}, 0.072, 200)],
               "l1": [record({"lam": 0.0}, 0.066, 150), record({"lam": 4e-5}, 0.068, 85)]}
    lines = {"kl": [("beta", {"rho": 0.08})], "l1": [("lam", {})]}
    sigmoid = [record({"lam": 0.0, "activation": "sigmoid"}, 0.066, 340), record({"lam": 1e-4, "activation": "sigmoid"}, 0.069, 150)]
    whole, zoom = plots.plot_kl_l1_tradeoff(records, lines, sigmoid, floor=0.058)
    assert whole.axes[0].get_ylim() == (0.05, 0.156) and zoom.axes[0].get_xlim() == pytest.approx((60, 400))
    assert [l.get_ydata()[0] for l in whole.axes[0].lines if l.get_label() == "BCE floor (section 2)"] == [0.058]
    for fig in (whole, zoom):
        legend = fig.axes[0].get_legend()
        assert legend is not None and "L1 on sigmoid codes: λ varies" in [t.get_text() for t in legend.get_texts()]
        assert legend.get_bbox_to_anchor().transformed(fig.axes[0].transAxes.inverted()).x0 == pytest.approx(1.01)
    texts = [t.get_text() for t in zoom.axes[0].texts]
    assert "λ=1.0e-04" in texts and "λ=0" in texts
    assert plots.KL_L1_TRADEOFF_VIEWS["zoom"]["xlim"] == (60, 400)   # the layout constant is not modified by a call
    assert not any(c.__class__.__name__ == "ErrorbarContainer" for c in zoom.axes[0].containers)   # default: no bars
    barred = plots.plot_kl_l1_tradeoff(records, lines, sigmoid, floor=0.058, tolerance={"units_for_mass": 8.0, "bce": 6e-4})
    for fig in barred:
        bars = [c for c in fig.axes[0].containers if c.__class__.__name__ == "ErrorbarContainer"]
        assert len(bars) == 2 and fig.axes[0].get_title().endswith("stars ± one KL − L1 tolerance")
        for container in bars:   # each cross spans the star ± the tolerance on both axes
            (xs, ys) = container.lines[0].get_data()
            horizontal, vertical = (seg for seg in container.lines[2])
            x_span = horizontal.get_segments()[0][:, 0]
            y_span = vertical.get_segments()[0][:, 1]
            assert x_span == pytest.approx([xs[0] - 8.0, xs[0] + 8.0]) and y_span == pytest.approx([ys[0] - 6e-4, ys[0] + 6e-4])
    with pytest.raises(ValueError, match="tolerance"):
        plots.plot_kl_l1_tradeoff(records, lines, sigmoid, floor=0.058, tolerance={"bce": 1e-3})
    with pytest.raises(ValueError, match="sigmoid_l1"):
        plots.plot_kl_l1_tradeoff(records, lines, [], floor=0.058)
    with pytest.raises(ValueError, match="floor"):
        plots.plot_kl_l1_tradeoff(records, lines, sigmoid, floor=-1)
    plt.close("all")


def test_plot_beta_comparison_draws_both_runs_and_the_sweep():
    from types import SimpleNamespace
    rng = np.random.default_rng(0)
    entries = {f"beta = {b:g}": SimpleNamespace(features=rng.normal(size=(64, 28, 28)).astype(np.float32),
                                                 feature_units=np.arange(64), firing_frequency=rng.random(512) / 10,
                                                 mean_activation=rng.random(512) / 5) for b in (0.0, 0.005)}
    sweep = [{"beta": b, "test BCE": y, "units on per digit": u, "k90 (units)": k}
             for b, y, u, k in ((0.0, 0.066, 190.0, 337.0), (0.005, 0.070, 13.7, 237.0), (0.15, 0.078, 7.5, 286.0))]
    fig = plots.plot_beta_comparison(entries, sweep, n=4)
    image_axes = [ax for ax in fig.axes if ax.images]
    assert len(image_axes) == 8                                   # 4 tiles per run
    limits = {ax.images[0].get_clim() for ax in image_axes}
    assert len(limits) == 1                                       # one colour scale for both runs
    scatter, by_units, by_k90 = [ax for ax in fig.axes if not ax.images and ax.get_xlabel()][-3:]
    for ax, entry in zip(scatter.collections, entries.values()):
        np.testing.assert_allclose(ax.get_offsets(), np.column_stack([entry.mean_activation, entry.firing_frequency]), rtol=1e-6)
    assert (scatter.get_xscale(), scatter.get_yscale()) == ("log", "symlog")  # rho_hat and f_j span decades; f_j may be 0
    diagonal = scatter.get_lines()[0].get_xydata()
    np.testing.assert_allclose(diagonal[:, 0], diagonal[:, 1])                  # the line f_j = rho_hat_j
    np.testing.assert_allclose(by_k90.get_lines()[0].get_xydata(), [[337.0, 0.066], [237.0, 0.070], [286.0, 0.078]])
    assert by_units.get_xlabel() == "units on per digit" and "beta 0.005" in [t.get_text() for t in by_units.texts]
    with pytest.raises(ValueError, match="numeric"):
        plots.plot_beta_comparison(entries, [{"beta": 0.005, "test BCE": "0.07 ± 0.01"}])
    with pytest.raises(ValueError, match="one or two"):
        plots.plot_beta_comparison({}, sweep)
    fig = plots.plot_beta_comparison(entries, sweep, n=4, xscale="log", point_label="β", ylabel="test BCE (nats)",
                                     trade_note="seed 0")
    _, by_units, by_k90 = [ax for ax in fig.axes if not ax.images and ax.get_xlabel()][-3:]
    assert by_units.get_xscale() == by_k90.get_xscale() == "log" and by_units.get_xlabel() == "units on per digit (log scale)"
    assert "β 0.005" in [t.get_text() for t in by_units.texts] and by_units.get_ylabel() == "test BCE (nats)"
    assert by_k90.get_title() == "test BCE against k90 (units) (seed 0)"
    np.testing.assert_allclose(by_k90.get_lines()[0].get_xydata(), [[337.0, 0.066], [237.0, 0.070], [286.0, 0.078]])
    with pytest.raises(ValueError, match="xscale"):
        plots.plot_beta_comparison(entries, sweep, xscale="symlog")
    with pytest.raises(ValueError, match="point_label must be a non-empty string"):
        plots.plot_beta_comparison(entries, sweep, point_label="")
    _, by_units, by_k90 = [ax for ax in plots.plot_beta_comparison(entries, sweep, n=4, xscale=("log", "linear")).axes
                           if not ax.images and ax.get_xlabel()][-3:]
    assert (by_units.get_xscale(), by_k90.get_xscale()) == ("log", "linear") and by_k90.get_xlabel() == "k90 (units)"
    with pytest.raises(ValueError, match="one per x_keys entry"):
        plots.plot_beta_comparison(entries, sweep, xscale=("log",))
    bare = plots.plot_beta_comparison(entries, sweep, n=0)       # n=0: the bottom row alone, no columns
    assert not [ax for ax in bare.axes if ax.images] and len(bare.axes) == 3
    for ax, entry in zip(bare.axes[0].collections, entries.values()):
        np.testing.assert_allclose(ax.get_offsets(), np.column_stack([entry.mean_activation, entry.firing_frequency]), rtol=1e-6)
    np.testing.assert_allclose(bare.axes[2].get_lines()[0].get_xydata(), [[337.0, 0.066], [237.0, 0.070], [286.0, 0.078]])
    with pytest.raises(ValueError):
        plots.plot_beta_comparison(entries, sweep, n=-1)


def test_error_maps_share_one_scale_and_draw_the_difference():
    a, b = torch.linspace(0, 1, 784), torch.full((784,), 0.25)
    fig = plots.plot_error_maps({"A": a, "B": b}, title="t")
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(images) == 3
    assert images[0].get_clim() == images[1].get_clim() == (0, 1.0)      # one scale, from 0 to the larger maximum
    np.testing.assert_allclose(images[2].get_array().ravel(), (a - b).numpy())
    low, high = images[2].get_clim()
    assert low == -high == -0.75                                          # symmetric around 0
    assert fig._suptitle.get_text() == "t"


@pytest.mark.parametrize("maps", [{"A": torch.zeros(784)}, {"A": torch.zeros(784), "B": torch.zeros(10)},
                                  {"A": torch.zeros(784), "B": torch.full((784,), float("nan"))}, []])
def test_error_maps_refuse_bad_input(maps):
    with pytest.raises(ValueError):
        plots.plot_error_maps(maps)


def test_plot_live_units_draws_one_line_per_run_with_its_points():
    curves = {"a": ([0, 1, 50, 100], [512, 300, 250, 240]), "b": ([0, 1, 50], [512, 512, 500])}
    fig = plots.plot_live_units(curves, steps_per_epoch=50, title="t")
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.get_lines()] == ["a", "b"]
    for line, (steps, n_live) in zip(ax.get_lines(), curves.values()):
        assert list(line.get_xdata()) == steps and list(line.get_ydata()) == n_live
    assert ax.get_xscale() == "symlog" and "50 steps per epoch" in ax.get_xlabel()
    with pytest.raises(ValueError):
        plots.plot_live_units({"a": ([0, 1], [512])}, steps_per_epoch=50)
    with pytest.raises(ValueError):
        plots.plot_live_units({}, steps_per_epoch=50)
